import Glibc
import VMMKit

/// The CMOS real-time clock (MC146818) of QEMU's `pc` machine: index port 0x70 (bit 7
/// masks NMIs, kept but not modelled), data port 0x71. The time registers read the host's
/// UTC clock (QEMU's default `-rtc base=utc`) plus whatever the guest set, in BCD or
/// binary and in 24- or 12-hour form as register B says; the CMOS memory holds what
/// QEMU's does for its BIOS: base and extended memory, memory between 16 MiB and 4 GiB
/// (64 KiB units) and above 4 GiB, the CPU count, the equipment byte and the century
/// (0x32, also at 0x37 as QEMU's), the floppy and boot-order bytes of QEMU's `pc`
/// defaults and, with `--hda`, the disk's type and geometry (`setHardDisk`).
///
/// Its update cycle and flags as QEMU's: "update in progress" (register A bit 7) reads
/// set in the last 244 µs of each second of the guest's clock (while it runs: register
/// B's SET clear, divider 0-2), so a guest that waits for the update's rising edge to
/// find the start of a second finds it; register C reads "update ended" (bit 4) once a
/// second has ended since it was last read, "alarm" (bit 5) once a second matching the
/// alarm registers (1, 3, 5; 0xc0-0xff matches any) has begun, "periodic" (bit 6) once a
/// period of register A's rate has passed while register B enables it, and "IRQ" (bit 7)
/// when register B enables one that is set; a read clears them. With an in-kernel
/// irqchip, its interrupt output (IRQ 8, through the HPET where there is one, as QEMU's
/// `pc` wires it) is raised then until register C is read (`connectInterrupts`). Before, "update in progress" never read set, register C always read 0 and IRQ 8
/// never rose: a guest waiting for any of them spun or slept until `--max-seconds`.
///
/// Without it both ports were unassigned: every register read 0xff, so "update in
/// progress" never cleared and a guest waiting for it (the usual first step of reading
/// the time) spun until `--max-seconds`, or forever. Registered where no plugin claims
/// either port; in snapshots (`BuiltInDeviceState`): the guest's offset from the host
/// clock, the CMOS memory (register C's byte: the flags the guest had not read) and the index.
final class RTC: @unchecked Sendable {
    static let indexPort: UInt16 = 0x70, dataPort: UInt16 = 0x71
    static let registerA = 0x0a, registerB = 0x0b, registerC = 0x0c, registerD = 0x0d, century = 0x32, ps2Century = 0x37
    /// The chip's time base, ticks a second.
    static let ticksPerSecond: Int64 = 1 << 15
    /// "Update in progress" reads set for the last 8 ticks (244 µs) of a second, as QEMU's.
    static let updateTicks: Int64 = 8
    static let maxOffset = BuiltInDeviceState.rtcMaxOffset

    let thread = DeviceThread(name: "rtc")
    // Guarded by the thread's lock:
    /// CMOS memory, registers A and B included; the time registers are computed while
    /// the clock runs and are the bytes the guest wrote while it is stopped (kept in
    /// snapshots either way).
    var ram = [UInt8](repeating: 0, count: 128)
    /// The last index written to port 0x70, NMI mask bit included.
    var index: UInt8 = 0
    /// Seconds the guest's clock runs ahead of the host's.
    var offset: Int64 = 0
    /// The guest's clock in ticks when register C was last read (or the clock started):
    /// its flags are the seconds and periods that ended since.
    var flagsRead: Int64 = 0
    /// Drives the interrupt output (`connectInterrupts`: machines with an in-kernel
    /// irqchip): IRQ 8, or the HPET's `rtcLine`, which passes it on to IRQ 8. Called under
    /// this device's lock, which is so taken before the HPET's, never after.
    var line: (@Sendable (Bool) -> Void)?
    /// The output was raised and register C not read since: nothing more to raise until it is.
    var raised = false

    init(cpus: Int, lowRAM: UInt64, highRAM: UInt64) {
        ram[Self.registerA] = 0x26 // 32.768 kHz time base, 1024 Hz rate
        ram[Self.registerB] = 0x02 // 24-hour, BCD, no interrupts
        // QEMU's `pc` has an empty floppy drive A (vl.c's default drive) of its ISA
        // controller's fallback type, 2.88 MB (fdc-isa.c): `pc_cmos_init_floppy`'s type 5.
        ram[0x10] = 0x50
        ram[0x14] = 0x07 // equipment: one floppy drive, FPU, PS/2 mouse
        // QEMU `pc`'s boot order "cad" (`set_boot_dev`, `boot_device2nibble`): disk (2),
        // floppy (1), CD-ROM (3): 0x3d = first | second << 4, 0x38 = third << 4 with bit 0
        // clear as QEMU's default fd_bootchk leaves it.
        (ram[0x3d], ram[0x38]) = (0x12, 0x30)
        put16(0x15, 640) // base memory, KiB
        let extended = UInt16(min(lowRAM > 1 << 20 ? (lowRAM - (1 << 20)) / 1024 : 0, 0xffff))
        put16(0x17, extended)
        put16(0x30, extended)
        put16(0x34, UInt16(min(lowRAM > 16 << 20 ? (lowRAM - (16 << 20)) / 65536 : 0, 0xffff)))
        let above = min(highRAM / 65536, 0xff_ffff)
        (ram[0x5b], ram[0x5c], ram[0x5d]) = (UInt8(truncatingIfNeeded: above), UInt8(truncatingIfNeeded: above >> 8),
                                            UInt8(truncatingIfNeeded: above >> 16))
        ram[0x5f] = UInt8(truncatingIfNeeded: max(cpus, 1) - 1)
        flagsRead = ticks()
    }

    /// `--hda`'s disk as QEMU's `pc_cmos_init_late`/`cmos_init_hd` describe the primary
    /// master: present (0x12), type 47 (0x19), cylinders, heads, no precompensation,
    /// control byte, landing zone, sectors (0x1b-0x23), and in 0x39 the BIOS translation
    /// `hd_geometry_guess` picked with the geometry (`ATAGeometry`: none 0, LBA 1, LARGE
    /// 2). Before any vCPU runs; a restore replaces the whole CMOS with the snapshot's, so
    /// an old snapshot keeps what its guest saw.
    func setHardDisk(_ g: ATAGeometry) {
        thread.lock()
        defer { thread.unlock() }
        // Bounded as ATAGeometry makes them, so no value is truncated into another geometry.
        let c = UInt16(min(g.cylinders, 16383)), h = UInt8(min(g.heads, 16)), s = UInt8(min(g.sectorsPerTrack, 63))
        ram[0x12] = 0xf0
        ram[0x19] = 47
        put16(0x1b, c)
        ram[0x1d] = h
        (ram[0x1e], ram[0x1f]) = (0xff, 0xff)
        ram[0x20] = 0xc0 | (h > 8 ? 0x08 : 0)
        put16(0x21, c)
        ram[0x23] = s
        ram[0x39] = g.translation.rawValue
    }

    private func put16(_ at: Int, _ value: UInt16) {
        ram[at] = UInt8(truncatingIfNeeded: value)
        ram[at + 1] = UInt8(truncatingIfNeeded: value >> 8)
    }

    func register(on dispatcher: ExitDispatcher) throws(VMMError) {
        try dispatcher.registerPIO(port: Self.indexPort, count: 2, owner: "rtc (built-in)") { [self] io, _ in
            // One lock for the whole access, as QEMU's big lock holds for a whole exit: another
            // vCPU's index cannot come between an `outw` to 0x70's index and its data (it
            // did, and one vCPU's byte landed in the register the other had selected).
            thread.lock()
            for i in 0..<io.count {
                // Bytes past the two ports read all-ones; an access at 0x70 of two bytes
                // reaches the index, then the data.
                if io.isWrite {
                    let value = io.element(i)
                    for lane in 0..<io.size where Int(io.port &- Self.indexPort) + lane < 2 {
                        accessLocked(port: io.port &+ UInt16(lane), write: UInt8(truncatingIfNeeded: value >> UInt32(lane * 8)))
                    }
                } else {
                    var value = ~UInt32(0)
                    for lane in 0..<io.size where Int(io.port &- Self.indexPort) + lane < 2 {
                        let byte = UInt32(accessLocked(port: io.port &+ UInt16(lane), write: nil))
                        value = value & ~(0xff << UInt32(lane * 8)) | byte << UInt32(lane * 8)
                    }
                    io.setElement(i, value)
                }
            }
            thread.unlock()
            guard io.isWrite else { return .handled }
            // Register B may have just enabled an interrupt: the first time, a thread starts.
            do throws(VMMError) { try startInterruptsIfEnabled() } catch {
                guard case let .systemCallFailed(name, errno) = error else { return .stop(.error(error)) }
                return .stop(.error(.systemCallFailed(name: "\(name) (the RTC's interrupts, IRQ 8, which the guest enabled)", errno: errno)))
            }
            return .handled
        }
    }

    /// One byte at port 0x70 or 0x71: a read when `write` is nil.
    @discardableResult
    func access(port: UInt16, write: UInt8?) -> UInt8 {
        thread.locked { accessLocked(port: port, write: write) }
    }

    /// `access`'s, under the lock.
    @discardableResult
    private func accessLocked(port: UInt16, write: UInt8?) -> UInt8 {
        if port == Self.indexPort {
            if let write { index = write }
            return 0xff // the index port does not read back (QEMU's neither)
        }
        // 0x37, the IBM PS/2 century byte, is the century register: QEMU's moves the
        // index there on either access, so 0x32 and 0x37 read and set the same byte.
        if index & 0x7f == Self.ps2Century { index = index & 0x80 | UInt8(Self.century) }
        let at = Int(index & 0x7f)
        if let write { store(at, write); return 0 }
        switch at {
        case 0, 2, 4, 6, 7, 8, 9, Self.century: return clockRuns ? encode(at, timeField(at, now())) : ram[at]
        case Self.registerA: return ram[at] & 0x7f | (updating(ticks()) ? 0x80 : 0)
        case Self.registerC: return takeFlags()
        case Self.registerD: return 0x80 // battery good
        default: return ram[at]
        }
    }

    /// While the clock is stopped (register B's SET, or register A's divider in reset) the
    /// time registers are plain bytes, as the chip's: a guest sets the date a field at a
    /// time (Linux's `mc146818_set_time`: SET, year, month, day...) and the clock takes
    /// all of them together when it starts again. Field by field, 31 January then
    /// "February" would have been 3 March before the day was written.
    private func store(_ at: Int, _ value: UInt8) {
        switch at {
        case 0, 2, 4, 6, 7, 8, 9, Self.century:
            if !clockRuns { ram[at] = value } else if at != 6 { setTime(at, decode(at, value)) }
        case Self.registerC, Self.registerD: break // read-only
        case Self.registerA, Self.registerB:
            let wasRunning = clockRuns
            if wasRunning { latchTime() }
            keepFlags()
            // SET clears the update-ended interrupt's enable, as QEMU's.
            ram[at] = at == Self.registerA ? value & 0x7f : value & 0x80 != 0 ? value & ~0x10 : value
            if !wasRunning, clockRuns, let t = latched() { setTime(t) }
            // The line follows IRQF under the new enables, as QEMU's register B write: an
            // interrupt the guest disabled before reading C is lowered, not delivered later
            // (through the HPET, at the end of LegacyReplacement, it was); one enabled
            // now is raised by the thread.
            if at == Self.registerB, raised, flags(at: ticks()) & 0x80 == 0 {
                raised = false
                line?(false)
            }
            thread.signal()
        default: ram[at] = value
        }
    }

    /// The time registers as the clock reads now, for the guest to read and change while
    /// the clock is stopped.
    private func latchTime() {
        let t = now()
        for at in [0, 2, 4, 6, 7, 8, 9, Self.century] { ram[at] = encode(at, timeField(at, t)) }
    }

    /// The stopped clock's time registers as a time (the day of week follows the date);
    /// nil for a year or century past 99.
    private func latched() -> CivilTime? {
        var t = now()
        let (century, year) = (decode(Self.century, ram[Self.century]), decode(9, ram[9]))
        guard century < 100, year < 100 else { return nil }
        (t.second, t.minute, t.hour) = (decode(0, ram[0]), decode(2, ram[2]), decode(4, ram[4]))
        (t.day, t.month, t.year) = (decode(7, ram[7]), decode(8, ram[8]), century * 100 + year)
        return t
    }

    /// Register C's pending flags into its byte, counted afresh from now: the clock is
    /// about to move or stop, or an enable to change, and the seconds and periods since
    /// the last read would be counted against the new setting. Moved back a year, the
    /// clock raised no flag until it passed its old reading again; moved forward, an
    /// alarm and an update rang at once.
    private func keepFlags() {
        let now = ticks()
        ram[Self.registerC] |= flags(at: now) & Self.keptFlags
        flagsRead = now
    }

    /// The guest's clock in ticks of the time base (1/32768 s): the host's UTC clock plus
    /// the offset (at most `maxOffset`, so no overflow before the year 200,000).
    func ticks() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return (Int64(ts.tv_sec) &+ offset) &* Self.ticksPerSecond &+ Int64(ts.tv_nsec) &* Self.ticksPerSecond / 1_000_000_000
    }

    /// The clock updates once a second: register B's SET clear, divider bits 0-2 (QEMU's test).
    var clockRuns: Bool { ram[Self.registerB] & 0x80 == 0 && ram[Self.registerA] & 0x70 <= 0x20 }

    /// Within the last 244 µs before the clock's next second.
    private func updating(_ now: Int64) -> Bool {
        clockRuns && now & (Self.ticksPerSecond - 1) >= Self.ticksPerSecond - Self.updateTicks
    }

    /// Register C's flags at `now`: "update ended" for a second that ended since the last
    /// read, "periodic" for a period of register A's rate that did while register B
    /// enables it, and "IRQ" when register B enables one of them. Shifts, not divisions:
    /// a clock set before 1970 counts negative ticks.
    func flags(at now: Int64) -> UInt8 {
        let last = flagsRead
        var flags: UInt8 = 0
        if clockRuns, now >> 15 > last >> 15 {
            flags |= 0x10
            if alarmRang(after: last >> 15, through: now >> 15) { flags |= 0x20 }
        }
        if ram[Self.registerB] & 0x40 != 0, let shift = periodShift(), now >> shift > last >> shift { flags |= 0x40 }
        flags |= ram[Self.registerC] & Self.keptFlags // set before a snapshot, not read since
        if flags & ram[Self.registerB] & 0x70 != 0 { flags |= 0x80 }
        return flags
    }

    /// Whether a second in (`after`, `through`] of the guest's clock matched the alarm
    /// (registers 1, 3 and 5 against seconds, minutes and hours, in the guest's format;
    /// 0xc0-0xff matches any), as the chip compares at each update. A day covers every
    /// time of day: at most 86,400 seconds are looked at, however long register C went
    /// unread.
    private func alarmRang(after: Int64, through: Int64) -> Bool {
        // Which hours, minutes and seconds the alarm matches, as bit sets: a value the
        // guest's format cannot hold (BCD 0x7f) matches nothing, and no loop runs for it.
        func matching(_ at: Int, _ count: Int) -> UInt64 {
            let alarm = ram[at + 1]
            if alarm & 0xc0 == 0xc0 { return (1 << UInt64(count)) - 1 }
            var set: UInt64 = 0
            for v in 0..<count where encode(at, v) == alarm { set |= 1 << UInt64(v) }
            return set
        }
        let hours = matching(4, 24), minutes = matching(2, 60), seconds = matching(0, 60)
        guard hours != 0, minutes != 0, seconds != 0 else { return false }
        var s = max(after &+ 1, through &- 86_399)
        while s <= through { // at most 24 hours, 1,440 minutes and a minute's seconds
            let tod = Int((s % 86_400 + 86_400) % 86_400)
            if hours & (1 << UInt64(tod / 3600)) == 0 { s &+= Int64(3600 - tod % 3600); continue }
            if minutes & (1 << UInt64(tod / 60 % 60)) == 0 { s &+= Int64(60 - tod % 60); continue }
            // The first matching second from this one on, in this minute.
            let later = seconds >> UInt64(tod % 60)
            guard later != 0 else { s &+= Int64(60 - tod % 60); continue }
            return s &+ Int64(later.trailingZeroBitCount) <= through
        }
        return false
    }

    /// A read of register C: its flags, cleared; the interrupt output lowered if it was raised.
    private func takeFlags() -> UInt8 {
        let now = ticks()
        let c = flags(at: now)
        flagsRead = now
        ram[Self.registerC] = 0
        if raised {
            raised = false
            line?(false)
            thread.signal()
        }
        return c
    }

    /// Register A's rate select as QEMU reads it (0 none, 1 and 2 as 8 and 9): a period of
    /// 2^(rate-1) ticks, from 122 µs (3) to 500 ms (15).
    func periodShift() -> Int64? {
        let rate = Int64(ram[Self.registerA] & 0x0f)
        guard rate != 0 else { return nil }
        return (rate <= 2 ? rate + 7 : rate) - 1
    }

    /// The guest's time now, broken down (UTC). Civil-calendar arithmetic of its own:
    /// glibc's gmtime_r and timegm read /etc/localtime on their first call (tzset), a
    /// system call the vCPU threads' seccomp list refuses.
    private func now() -> CivilTime { CivilTime(seconds: Int64(time(nil)) &+ offset) }

    private func timeField(_ at: Int, _ t: CivilTime) -> Int {
        switch at {
        case 0: return t.second
        case 2: return t.minute
        case 4: return t.hour
        case 6: return t.weekday + 1
        case 7: return t.day
        case 8: return t.month
        case 9: return t.year % 100
        default: return t.year / 100
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

    /// The guest sets one field of the running clock: it moves by the difference.
    private func setTime(_ at: Int, _ value: Int) {
        var t = now()
        switch at {
        case 9 where value >= 100, Self.century where value >= 100: return
        case 0: t.second = value
        case 2: t.minute = value
        case 4: t.hour = value
        case 7: t.day = value
        case 8: t.month = value
        case 9: t.year = t.year / 100 * 100 + value
        default: t.year = value * 100 + t.year % 100
        }
        setTime(t)
    }

    /// The clock moves to `t`. A field out of its range (second 60, month 13, BCD 0x1a...)
    /// leaves the clock as it was, as does a time more than `maxOffset` from the host's.
    private func setTime(_ t: CivilTime) {
        guard t.second < 60, t.minute < 60, t.hour < 24, (1...31).contains(t.day), (1...12).contains(t.month) else { return }
        let (delta, overflow) = t.seconds.subtractingReportingOverflow(Int64(time(nil)))
        guard !overflow, delta.magnitude <= UInt64(Self.maxOffset) else { return }
        keepFlags()
        offset = delta
        flagsRead = ticks()
        thread.signal()
    }
}
