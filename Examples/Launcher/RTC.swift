import Glibc
import VMMKit

/// The CMOS real-time clock (MC146818) of QEMU's `pc` machine: index port 0x70 (bit 7
/// masks NMIs, kept but not modelled), data port 0x71. The time registers read the host's
/// UTC clock (QEMU's default `-rtc base=utc`) plus whatever the guest set, in BCD or
/// binary and in 24- or 12-hour form as register B says; "update in progress" (register
/// A bit 7) never reads set; the CMOS memory holds what QEMU's does for its BIOS: base
/// and extended memory, memory between 16 MiB and 4 GiB (64 KiB units) and above 4 GiB,
/// the CPU count, the equipment byte and the century (0x32). No alarm, periodic or
/// update interrupts (IRQ 8 is never raised).
///
/// Without it both ports were unassigned: every register read 0xff, so "update in
/// progress" never cleared and a guest waiting for it (the usual first step of reading
/// the time) spun until `--max-seconds`, or forever. Registered where no plugin claims
/// either port; in snapshots (`BuiltInDeviceState`): the guest's offset from the host
/// clock, the CMOS memory and the index.
final class RTC: @unchecked Sendable {
    static let indexPort: UInt16 = 0x70, dataPort: UInt16 = 0x71
    static let registerA = 0x0a, registerB = 0x0b, registerC = 0x0c, registerD = 0x0d, century = 0x32
    static let maxOffset = BuiltInDeviceState.rtcMaxOffset

    private var lock = pthread_mutex_t()
    // Guarded by lock:
    /// CMOS memory, registers A and B included; the time registers are computed.
    private var ram = [UInt8](repeating: 0, count: 128)
    /// The last index written to port 0x70, NMI mask bit included.
    private var index: UInt8 = 0
    /// Seconds the guest's clock runs ahead of the host's.
    private var offset: Int64 = 0

    init(cpus: Int, lowRAM: UInt64, highRAM: UInt64) {
        pthread_mutex_init(&lock, nil)
        ram[Self.registerA] = 0x26 // 32.768 kHz time base, 1024 Hz rate
        ram[Self.registerB] = 0x02 // 24-hour, BCD, no interrupts
        ram[0x14] = 0x06 // equipment: FPU, PS/2 mouse, no floppy
        put16(0x15, 640) // base memory, KiB
        let extended = UInt16(min(lowRAM > 1 << 20 ? (lowRAM - (1 << 20)) / 1024 : 0, 0xffff))
        put16(0x17, extended)
        put16(0x30, extended)
        put16(0x34, UInt16(min(lowRAM > 16 << 20 ? (lowRAM - (16 << 20)) / 65536 : 0, 0xffff)))
        let above = min(highRAM / 65536, 0xff_ffff)
        (ram[0x5b], ram[0x5c], ram[0x5d]) = (UInt8(truncatingIfNeeded: above), UInt8(truncatingIfNeeded: above >> 8),
                                            UInt8(truncatingIfNeeded: above >> 16))
        ram[0x5f] = UInt8(truncatingIfNeeded: max(cpus, 1) - 1)
    }

    deinit { pthread_mutex_destroy(&lock) }

    private func put16(_ at: Int, _ value: UInt16) {
        ram[at] = UInt8(truncatingIfNeeded: value)
        ram[at + 1] = UInt8(truncatingIfNeeded: value >> 8)
    }

    func register(on dispatcher: ExitDispatcher) throws(VMMError) {
        try dispatcher.registerPIO(port: Self.indexPort, count: 2, owner: "rtc (built-in)") { [self] io, _ in
            for i in 0..<io.count {
                // Bytes past the two ports read all-ones; an access at 0x70 of two bytes
                // reaches the index, then the data.
                if io.isWrite {
                    let value = io.element(i)
                    for lane in 0..<io.size where Int(io.port &- Self.indexPort) + lane < 2 {
                        access(port: io.port &+ UInt16(lane), write: UInt8(truncatingIfNeeded: value >> UInt32(lane * 8)))
                    }
                } else {
                    var value = ~UInt32(0)
                    for lane in 0..<io.size where Int(io.port &- Self.indexPort) + lane < 2 {
                        let byte = UInt32(access(port: io.port &+ UInt16(lane), write: nil))
                        value = value & ~(0xff << UInt32(lane * 8)) | byte << UInt32(lane * 8)
                    }
                    io.setElement(i, value)
                }
            }
            return .handled
        }
    }

    /// One byte at port 0x70 or 0x71: a read when `write` is nil.
    @discardableResult
    func access(port: UInt16, write: UInt8?) -> UInt8 {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        if port == Self.indexPort {
            if let write { index = write }
            return 0xff // the index port does not read back (QEMU's neither)
        }
        let at = Int(index & 0x7f)
        if let write { store(at, write); return 0 }
        switch at {
        case 0, 2, 4, 6, 7, 8, 9, Self.century: return encode(at, timeField(at, now()))
        case Self.registerA: return ram[at] & 0x7f // never "update in progress"
        case Self.registerC: return 0 // no interrupt flags
        case Self.registerD: return 0x80 // battery good
        default: return ram[at]
        }
    }

    private func store(_ at: Int, _ value: UInt8) {
        switch at {
        case 0, 2, 4, 7, 8, 9, Self.century: setTime(at, decode(at, value))
        case 6, Self.registerC, Self.registerD: break // day of week follows the date; C and D read-only
        case Self.registerA: ram[at] = value & 0x7f
        default: ram[at] = value
        }
    }

    /// The guest's time now, broken down (UTC).
    private func now() -> tm {
        var t = time_t(Int64(time(nil)) &+ offset)
        var parts = tm()
        gmtime_r(&t, &parts)
        return parts
    }

    private func timeField(_ at: Int, _ t: tm) -> Int {
        let year = Int(t.tm_year) + 1900
        switch at {
        case 0: return Int(t.tm_sec)
        case 2: return Int(t.tm_min)
        case 4: return Int(t.tm_hour)
        case 6: return Int(t.tm_wday) + 1
        case 7: return Int(t.tm_mday)
        case 8: return Int(t.tm_mon) + 1
        case 9: return year % 100
        default: return year / 100
        }
    }

    private var binary: Bool { ram[Self.registerB] & 0x04 != 0 }
    private var twentyFourHour: Bool { ram[Self.registerB] & 0x02 != 0 }

    private func encode(_ at: Int, _ value: Int) -> UInt8 {
        var v = value, pm: UInt8 = 0
        if at == 4, !twentyFourHour {
            pm = v >= 12 ? 0x80 : 0
            v = v % 12 == 0 ? 12 : v % 12
        }
        let digits = binary ? UInt8(v & 0xff) : UInt8((v / 10 % 10) << 4 | v % 10)
        return digits | pm
    }

    private func decode(_ at: Int, _ raw: UInt8) -> Int {
        var byte = raw, pm = false
        if at == 4, !twentyFourHour { pm = byte & 0x80 != 0; byte &= 0x7f }
        var v = binary ? Int(byte) : Int(byte >> 4) * 10 + Int(byte & 0x0f)
        if at == 4, !twentyFourHour { v = v % 12 + (pm ? 12 : 0) }
        return v
    }

    /// The guest sets one field: its clock moves by the difference (timegm normalises
    /// out-of-range fields, as a guest writing nonsense gets some date); beyond
    /// `maxOffset` from the host's clock the write is ignored.
    private func setTime(_ at: Int, _ value: Int) {
        var t = now()
        let year = Int(t.tm_year) + 1900
        switch at {
        case 0: t.tm_sec = Int32(value)
        case 2: t.tm_min = Int32(value)
        case 4: t.tm_hour = Int32(value)
        case 7: t.tm_mday = Int32(value)
        case 8: t.tm_mon = Int32(value) - 1
        case 9: t.tm_year = Int32(year / 100 * 100 + value - 1900)
        default: t.tm_year = Int32(value * 100 + year % 100 - 1900)
        }
        let guest = Int64(timegm(&t)), host = Int64(time(nil))
        let (delta, overflow) = guest.subtractingReportingOverflow(host)
        guard !overflow, delta.magnitude <= UInt64(Self.maxOffset) else { return }
        offset = delta
    }

    /// For a snapshot (vCPUs paused).
    var state: BuiltInDeviceState.RTCRegisters {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        return .init(index: index, offset: offset, ram: ram)
    }

    /// A restore's, checked by `BuiltInDeviceState.decode` (before any vCPU runs).
    func restore(_ s: BuiltInDeviceState.RTCRegisters) {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        index = s.index
        offset = max(-Self.maxOffset, min(Self.maxOffset, s.offset))
        if s.ram.count == ram.count { ram = s.ram }
        ram[Self.registerA] &= 0x7f
    }
}
