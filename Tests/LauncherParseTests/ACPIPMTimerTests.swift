@testable import Launcher
import Synchronization
import Testing

/// ACPI's PM timer (`ACPIPMTimer`) on a clock the test moves: the count a guest reads,
/// its wrap, a restored count, and clock values no arithmetic may trap on.
@Suite("the ACPI PM timer's count")
struct ACPIPMTimerTests {
    final class FakeClock: Sendable {
        let ns = Mutex<UInt64>(0)
        func set(_ value: UInt64) { ns.withLock { $0 = value } }
        var read: @Sendable () -> UInt64 { { [self] in ns.withLock { $0 } } }
    }

    /// Ticks in `ns` nanoseconds worked out apart from the timer: whole seconds, then the rest.
    static func expected(_ ns: UInt64) -> UInt32 {
        let seconds = ns / 1_000_000_000, rest = ns % 1_000_000_000
        let ticks = seconds &* 3_579_545 &+ rest * 3_579_545 / 1_000_000_000
        return UInt32(truncatingIfNeeded: ticks) & 0xff_ffff
    }

    @Test("3,579,545 ticks a second from 0, 24 bits wrapping every 4.69 s, and no trap for a century of uptime or a clock that went back")
    func counts() {
        let clock = FakeClock()
        clock.set(1_000)
        let timer = ACPIPMTimer(clock: clock.read)
        #expect(timer.count == 0)
        for ns: UInt64 in [279, 280, 1_000_000, 100_000_000, 1_000_000_000, 4_686_999_999, 4_687_000_000, 5_000_000_000,
                           3_600_000_000_000, 100 * 366 * 86_400 * 1_000_000_000, UInt64.max - 1_000] {
            clock.set(1_000 + ns)
            #expect(timer.count == Self.expected(ns), "after \(ns) ns")
        }
        #expect(Self.expected(1_000_000_000) == 3_579_545)
        #expect(Self.expected(5_000_000_000) == 17_897_725 - 16_777_216)
        clock.set(999)
        #expect(timer.count == 0)
    }

    @Test("a restored count goes on from itself (its low 24 bits), and the bytes at each offset are the count's")
    func restoreAndBytes() {
        let clock = FakeClock()
        clock.set(50_000_000_000)
        let timer = ACPIPMTimer(clock: clock.read)
        timer.restore(0xff_fff0)
        #expect(timer.count == 0xff_fff0)
        clock.set(50_000_000_000 + 10_000) // 35 ticks: past the wrap
        #expect(timer.count == 0x13)
        timer.restore(0x1ab_cdef)
        #expect(timer.count == 0xab_cdef)
        timer.restore(0x12_3456)
        #expect(timer.read(offset: 0, size: 4) == 0x12_3456)
        #expect(timer.read(offset: 0, size: 2) == 0x3456)
        #expect(timer.read(offset: 1, size: 1) == 0x34)
        #expect(timer.read(offset: 2, size: 2) == 0x12)
        #expect(timer.read(offset: 3, size: 1) == 0)
        #expect(timer.read(offset: 4, size: 4) == 0)
    }

    /// The timer was built in after snapshots with this blob were first written: a blob
    /// without its line leaves it counting from 0; a line for it on a machine whose ports
    /// 0x608-0x60b a plugin took is refused.
    @Test("a saved count is restored; a blob without one (older) is accepted; one with it on a machine without the timer is refused")
    func restorePresence() throws {
        let clock = FakeClock()
        let devices = BuiltInDevices()
        devices.pmTimer = ACPIPMTimer(clock: clock.read)
        try devices.restore(BuiltInDeviceState(pmTimer: 0x12_3456))
        #expect(devices.state.pmTimer == 0x12_3456)
        try devices.restore(BuiltInDeviceState())
        #expect(devices.state.pmTimer == 0x12_3456)
        devices.pmTimer = nil
        #expect(devices.state.pmTimer == nil)
        do {
            try devices.restore(BuiltInDeviceState(pmTimer: 1))
            Issue.record("restored a PM timer count into a machine without the timer")
        } catch {
            #expect(error.message == "launcher devices: the snapshot has state of the built-in ACPI PM timer (port 0x608), and this machine has none (a plugin built or removed since?)")
        }
    }
}
