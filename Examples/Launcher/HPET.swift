import Glibc
import VMMKit

/// QEMU `pc`'s HPET at 0xfed00000 (`HPETState` holds its registers and rules), on
/// machines with the in-kernel irqchip (the ACPI HPET table names it), where no plugin
/// claims its MMIO range. Its interrupts are raised on a thread of its own that sleeps
/// until the next armed timer fires (the RTC's way); the thread starts when a timer is
/// first armed, which is when the guest starts the counter (every timer is set then, as
/// QEMU's), so a guest that never starts it never has the thread. A periodic timer
/// interrupts at most every 10 µs of the host's time, however short its period: the
/// comparator still moves on by whole periods, so a guest that reads it sees the
/// periods that passed. The counter follows the host's monotonic clock while the
/// process lives; a snapshot keeps its value and a restore goes on from it.
final class HPET: @unchecked Sendable {
    static let owner = "HPET (built-in)"
    /// The fewest nanoseconds between two passes of the interrupt thread.
    static let minimumInterval: UInt64 = 10_000

    let thread = DeviceThread(name: "hpet")
    // Guarded by the thread's lock:
    private var state = HPETState()
    private var line: (@Sendable (UInt32, Bool) -> Void)?
    private var pit: (@Sendable (Bool) -> Void)?
    /// The RTC's interrupt output (`rtcLine`), whatever IRQ 8 shows.
    private var rtcLevel = false
    private let clock: @Sendable () -> UInt64

    /// `clock`: nanoseconds, never going back (tests give their own).
    init(clock: @escaping @Sendable () -> UInt64 = MonotonicClock.now) {
        self.clock = clock
    }

    private func locked<T>(_ body: () -> T) -> T { thread.locked(body) }

    /// GSIs `line` is told to raise and lower; a route past the I/O APIC's 24 pins goes
    /// nowhere. `pit` lets the PIT run (true) or holds it silent (false) as
    /// LegacyReplacement mode leaves or takes IRQ 0.
    func connectInterrupts(line: @escaping @Sendable (UInt32, Bool) -> Void, pit: @escaping @Sendable (Bool) -> Void) {
        locked { (self.line, self.pit) = (line, pit) }
    }

    /// The RTC's interrupt output. On QEMU's `pc` it reaches IRQ 8 through the HPET,
    /// which passes it on unless LegacyReplacement gives IRQ 8 to timer 1; the level is
    /// kept meanwhile and driven when that mode ends (`hpet_handle_legacy_irq`,
    /// `rtc_irq_level`): the RTC's interrupts stop while the HPET holds IRQ 8, and one
    /// the RTC raised meanwhile (it waits for register C to be read) is not lost.
    func rtcLine(_ level: Bool) {
        locked {
            rtcLevel = level
            if !state.legacy { line?(8, level) }
        }
    }

    /// A restore's: the RTC's output as its restored state has it (`RTC.outputRaised`),
    /// taken without driving IRQ 8, which the restored irqchip already holds; driven when
    /// a LegacyReplacement mode the snapshot caught ends, as any level held meanwhile.
    func restoreRTCLevel(_ level: Bool) {
        locked { rtcLevel = level }
    }

    private func apply(_ changes: [HPETState.LineChange]) {
        guard let line else { return }
        for change in changes {
            switch change {
            case let .level(gsi, high) where gsi < VirtualMachine.irqLines: line(gsi, high)
            case let .pulse(gsi) where gsi < VirtualMachine.irqLines: line(gsi, true); line(gsi, false)
            case let .pit(enabled): pit?(enabled)
            case .rtc: line(8, rtcLevel)
            default: break
            }
        }
    }

    /// `size` bytes at `offset` into the register block.
    func read(_ offset: UInt64, size: Int) -> UInt64 {
        locked { state.read(offset, size: size, now: clock()) }
    }

    /// A write; wakes the interrupt thread, which finds what it changed.
    func write(_ offset: UInt64, size: Int, value: UInt64) {
        locked {
            apply(state.write(offset, size: size, value: value, now: clock()))
            thread.signal()
        }
    }

    /// The registers as a snapshot keeps them (`HPETState.saved`).
    var saved: HPETState { locked { state.saved(now: clock()) } }

    /// A restore's, checked by `HPETState.refusal` (before any vCPU runs).
    func restore(_ s: HPETState) {
        locked {
            state = s.restored(now: clock())
            thread.signal()
        }
    }

    /// Registers the block; the caller has checked that no plugin holds any of it.
    func register(on dispatcher: ExitDispatcher) throws(VMMError) {
        try dispatcher.registerMMIO(address: HPETState.base, length: HPETState.size, owner: Self.owner) { [self] access, _ in
            let offset = access.address &- HPETState.base
            if access.isWrite {
                write(offset, size: access.length, value: access.data)
                do throws(VMMError) { try startInterruptsIfArmed() } catch {
                    guard case let .systemCallFailed(name, errno) = error else { return .stop(.error(error)) }
                    return .stop(.error(.systemCallFailed(name: "\(name) (the HPET's interrupts, which the guest armed)", errno: errno)))
                }
            } else {
                access.data = read(offset, size: access.length)
            }
            return .handled
        }
    }

    /// Starts the interrupt thread if a timer is armed and none runs: after a guest's
    /// write and after a restore (before the vCPUs run).
    func startInterruptsIfArmed() throws(VMMError) {
        try thread.start(when: { [self] in line != nil && state.timers.contains { $0.deadline != nil } }) { [self] in thread.serve(interruptPass) }
    }

    /// Ends the interrupt thread, if it started (the run is over); the lines stay as they are.
    func stopInterrupts() { thread.stop() }

    /// One pass of the interrupt thread (`DeviceThread.serve`): fires what is due, then
    /// the seconds until the next armed timer.
    private func interruptPass() -> Double? {
        let now = clock()
        apply(state.fire(now: now))
        guard let next = state.nextFiring(now: now) else { return nil }
        return Double(max(next &- min(next, now), Self.minimumInterval)) / 1e9
    }
}
