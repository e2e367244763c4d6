import Synchronization
import VMMKit
import VMMLoader

/// ACPI's power management timer where QEMU's `pc` and `q35` machines have it (port
/// 0x608, the PM base + 8) and the FADT names it (`PCFirmware.pmTimerPort`, 4 bytes,
/// TMR_VAL_EXT clear): a 24-bit counter at 3.579545 MHz from 0 when the machine is
/// built, read only. Kernels calibrate their delay loops and TSC with it, and Linux can
/// keep time by it (`clocksource=acpi_pm`). Reads of 1 or 2 bytes give the counter's
/// bytes at the offset (QEMU accepts only 4-byte reads; the ACPI specification asks
/// for them); writes are ignored. Bits 24-31 read 0 and the counter wraps every 4.69 s.
///
/// It follows the host's monotonic clock while the process lives, paused or not (the
/// RTC's way; QEMU's virtual clock stops while paused). A snapshot keeps the count
/// (`BuiltInDeviceState.pmTimer`) and a restore goes on from it, so the guest never
/// sees it jump between the two. Not modelled: TMR_STS (PM1a status bit 0, set when
/// bit 23 flips) and the SCI it raises with TMR_EN; no guest we know enables it.
final class ACPIPMTimer: Sendable {
    static let port = PCFirmware.pmTimerPort
    static let frequency: UInt64 = 3_579_545
    static let mask: UInt32 = 0xff_ffff

    /// The count at a time of `clock` (ns).
    private struct Origin {
        var count: UInt32
        var at: UInt64
    }

    private let origin: Mutex<Origin>
    private let clock: @Sendable () -> UInt64

    /// `clock`: nanoseconds, never going back (tests give their own).
    init(clock: @escaping @Sendable () -> UInt64 = MonotonicClock.now) {
        self.clock = clock
        origin = Mutex(Origin(count: 0, at: clock()))
    }

    /// The counter now (24 bits).
    var count: UInt32 {
        let o = origin.withLock { $0 }
        return (o.count &+ Self.ticks(since: o.at, now: clock())) & Self.mask
    }

    /// Goes on from a saved count (its low 24 bits).
    func restore(_ count: UInt32) {
        let now = clock()
        origin.withLock { $0 = Origin(count: count & Self.mask, at: now) }
    }

    /// Ticks between two clock readings, modulo 2^32; 0 if `now` is before `start`.
    /// Full-width arithmetic: nanoseconds times 3.58 million overflow 64 bits in 85 minutes.
    static func ticks(since start: UInt64, now: UInt64) -> UInt32 {
        guard now > start else { return 0 }
        let product = (now - start).multipliedFullWidth(by: frequency)
        // The quotient fits: the high word is below `frequency`, far below 10^9.
        let (quotient, _) = UInt64(1_000_000_000).dividingFullWidth(product)
        return UInt32(truncatingIfNeeded: quotient)
    }

    /// An access of `size` bytes at `port + offset`: the counter's bytes from `offset`.
    func read(offset: Int, size: Int) -> UInt32 {
        guard offset >= 0, offset < 4 else { return 0 }
        let value = count >> UInt32(offset * 8)
        return size >= 4 ? value : value & (1 << UInt32(size * 8) - 1)
    }

    /// Ports 0x608-0x60b where no plugin holds any of them.
    func register(on dispatcher: ExitDispatcher) throws(VMMError) {
        try dispatcher.registerPIO(port: Self.port, count: 4, owner: "ACPI PM timer (built-in)") { [self] io, _ in
            guard !io.isWrite else { return .handled }
            let offset = Int(io.port &- Self.port)
            for i in 0..<io.count { io.setElement(i, read(offset: offset, size: io.size)) }
            return .handled
        }
    }
}
