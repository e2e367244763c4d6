import Glibc
@testable import Launcher
import Synchronization
import Testing

/// The HPET's registers and rules (`HPETState`), with time given by hand: what a guest
/// reads and which lines move, at which host nanosecond. On real KVM: `HPETGuestTests`.
@Suite("the HPET's registers, timers and snapshot line")
struct HPETTests {
    typealias S = HPETState
    static let t0: UInt64 = 1_000_000

    /// Enabled at `t0` (counter 0 then), timer `n` set up as `config` with `comparator`.
    /// The other timers, at their reset comparator ~0 with interrupts disabled, fire at
    /// once when the counter starts (QEMU's too: `hpet_set_timer` sets every timer, and its
    /// nanosecond deadline for ~0 wraps into the past), lowering their route, pin 0; they
    /// are done before this returns.
    static func running(timer n: Int = 0, config: UInt64, comparator: UInt64) -> S {
        var s = S()
        _ = s.write(0x108 + 0x20 * UInt64(n), size: 8, value: comparator, now: t0)
        _ = s.write(0x100 + 0x20 * UInt64(n), size: 8, value: config, now: t0)
        _ = s.write(0x010, size: 8, value: 1, now: t0)
        let others = (0..<S.timerCount).filter { $0 != n }
        #expect(others.allSatisfy { s.timers[$0].deadline == ~0 }, "armed at their comparator, which fire finds due at once")
        let fired = s.fire(now: t0)
        #expect(fired.filter { $0 == .level(0, false) }.count == others.count)
        return s
    }

    @Test("after a reset: QEMU pc's capabilities and period, each timer periodic-capable, 64-bit, routable to pin 2 only; the counter halted at 0")
    func reset() {
        let s = S()
        #expect(s.read(0x000, size: 8, now: 0) == 0x0098_9680_8086_a201)
        #expect(s.read(0x004, size: 4, now: 0) == 10_000_000, "the period alone, femtoseconds")
        #expect(s.read(0x004, size: 4, now: 0) == 10_000_000 && s.read(0x000, size: 4, now: 0) == 0x8086_a201)
        for n in 0..<3 {
            #expect(s.read(0x100 + 0x20 * UInt64(n), size: 8, now: 0) == 0x4_0000_0030)
            #expect(s.read(0x108 + 0x20 * UInt64(n), size: 8, now: 0) == ~0)
        }
        #expect(s.read(0x0f0, size: 8, now: 5_000_000) == 0)
        #expect(s.read(0x160, size: 8, now: 0) == 0, "no timer 3")
        #expect(s.read(0x400, size: 4, now: 0) == 0 && s.read(0, size: 0, now: 0) == 0 && s.read(0, size: 9, now: 0) == 0)
    }

    @Test("the counter runs at 100 MHz while enabled, holds while halted, and takes a write only then; read-only bits stay")
    func counter() {
        var s = S()
        #expect(s.write(0x010, size: 4, value: 0xffff_ffff, now: Self.t0) == [.pit(enabled: false), .level(0, false), .level(8, false)])
        #expect(s.read(0x010, size: 8, now: Self.t0) == 3, "bits 0 and 1 only")
        #expect(s.read(0x0f0, size: 8, now: Self.t0 + 10_000) == 1000)
        #expect(s.read(0x0f4, size: 4, now: Self.t0 + 10_000) == 0, "the high half")
        _ = s.write(0x0f0, size: 8, value: 7, now: Self.t0 + 10_000)
        #expect(s.read(0x0f0, size: 8, now: Self.t0 + 20_000) == 2000, "ignored while running")
        _ = s.write(0x010, size: 4, value: 0, now: Self.t0 + 20_000)
        #expect(s.read(0x0f0, size: 8, now: Self.t0 + 90_000) == 2000, "halted")
        _ = s.write(0x0f0, size: 4, value: 0x1234_5678, now: Self.t0 + 90_000)
        _ = s.write(0x0f4, size: 4, value: 0x1, now: Self.t0 + 90_000)
        #expect(s.read(0x0f0, size: 8, now: Self.t0 + 99_000) == 0x1_1234_5678)
        _ = s.write(0x000, size: 8, value: 0, now: 0)
        _ = s.write(0x100, size: 8, value: ~0, now: 0)
        #expect(s.read(0x000, size: 8, now: 0) == S.capabilities)
        #expect(s.read(0x100, size: 8, now: 0) == 0x4_0000_3f7e, "writable bits set, capabilities kept, no FSB enable")
    }

    @Test("a one-shot edge timer fires once when the counter reaches its comparator, as a pulse on its route")
    func oneShotEdge() {
        var s = Self.running(config: 2 << 9 | 0x4, comparator: 5000)
        #expect(s.nextFiring(now: Self.t0) == Self.t0 + 50_000)
        #expect(s.fire(now: Self.t0 + 49_990) == [])
        #expect(s.fire(now: Self.t0 + 50_000) == [.pulse(2)])
        #expect(s.timers[0].deadline == nil && s.isr == 0)
        #expect(s.nextFiring(now: Self.t0 + 60_000) == nil)
        #expect(s.fire(now: Self.t0 + 99_000) == [], "once")
    }

    @Test("a 64-bit comparator behind the counter fires at once, as QEMU's")
    func comparatorBehind() {
        var s = Self.running(config: 0x4, comparator: 0)
        let now = Self.t0 + 1_000_000
        _ = s.write(0x108, size: 8, value: 10, now: now) // the counter is at 100000
        #expect(s.nextFiring(now: now) == now)
        #expect(s.fire(now: now) == [.pulse(0)])
    }

    @Test("a periodic 64-bit timer whose comparator is behind keeps its phase: on from the comparator in whole periods, as QEMU's hpet_timer (it went on from the counter: 1007, not 1001)")
    func periodicBehindKeepsPhase() {
        var s = S()
        _ = s.write(0x100, size: 8, value: 0x40 | 0x8 | 0x4, now: 0) // set value, periodic, enabled, edge
        _ = s.write(0x108, size: 8, value: 7, now: 0) // comparator and period 7
        _ = s.write(0x0f0, size: 8, value: 1000, now: 0)
        _ = s.write(0x010, size: 8, value: 1, now: Self.t0)
        #expect(s.fire(now: Self.t0).contains(.pulse(0)), "behind: at once")
        #expect(s.timers[0].comparator == 1001 && s.timers[0].deadline == 1001)
        #expect(s.fire(now: Self.t0 + 10).contains(.pulse(0)) && s.timers[0].comparator == 1008)
    }

    @Test("a periodic 64-bit timer with a period of 2^63 or more fires once: its next match lies past 2^64 (the wrapped sum made it due at every pass, 100,000 interrupts a second)")
    func hugePeriodFiresOnce() {
        var s = S()
        _ = s.write(0x100, size: 8, value: 0x40 | 0x8 | 0x4, now: 0)
        _ = s.write(0x108, size: 8, value: 1000, now: 0) // comparator and period
        _ = s.write(0x108, size: 8, value: ~0, now: 0) // the period alone
        _ = s.write(0x010, size: 8, value: 1, now: Self.t0)
        _ = s.fire(now: Self.t0) // timers 1 and 2 at ~0
        #expect(s.fire(now: Self.t0 + 10_000) == [.pulse(0)])
        #expect(s.timers[0].deadline == nil && s.nextFiring(now: Self.t0 + 10_000) == nil)
        #expect(s.fire(now: Self.t0 + 20_000) == [])
    }

    @Test("a 32-bit comparator behind the counter's low half fires when the low half comes round to it, not at once; a one-shot one interrupts at the wrap first (QEMU's hpet_calculate_cmp64, wrap_flag)")
    func comparator32Behind() {
        var s = S()
        _ = s.write(0x0f0, size: 8, value: 0x3_ffff_ff00, now: 0)
        _ = s.write(0x100, size: 8, value: 0x100 | 0x4, now: 0) // 32-bit one-shot, edge, enabled
        _ = s.write(0x108, size: 4, value: 0x80, now: 0) // behind 0xffffff00
        _ = s.write(0x010, size: 8, value: 1, now: Self.t0)
        _ = s.fire(now: Self.t0) // timers 1 and 2 at ~0 (`running`)
        #expect(s.timers[0].deadline == 0x4_0000_0000 && s.timers[0].afterWrap == 0x4_0000_0080)
        #expect(s.fire(now: Self.t0 + 2550) == [], "not at once")
        #expect(s.fire(now: Self.t0 + 2560) == [.pulse(0)], "the wrap")
        #expect(s.nextFiring(now: Self.t0 + 2560) == Self.t0 + 2560 + 1280)
        #expect(s.fire(now: Self.t0 + 3840) == [.pulse(0)], "the match")
        #expect(s.timers[0].deadline == nil)
        // Periodic: no wrap interrupt; a period as written, not clamped to 31 bits.
        var p = S()
        _ = p.write(0x100, size: 8, value: 0x100 | 0x40 | 0x8 | 0x4, now: 0)
        _ = p.write(0x108, size: 4, value: 0xffff_fff0, now: 0)
        #expect(p.timers[0].period == 0xffff_fff0 && p.timers[0].comparator == 0xffff_fff0)
        _ = p.write(0x0f0, size: 8, value: 0xffff_fff8, now: 0)
        _ = p.write(0x010, size: 8, value: 1, now: Self.t0)
        #expect(p.timers[0].deadline == 0x1_ffff_fff0 && p.timers[0].afterWrap == nil)
    }

    @Test("every write to a timer's configuration sets it again while the counter runs: a one-shot that fired fires again at once when its comparator is behind")
    func rearmOnConfigWrite() {
        var s = Self.running(config: 0x4, comparator: 100)
        #expect(s.fire(now: Self.t0 + 1000) == [.pulse(0)] && s.timers[0].deadline == nil)
        _ = s.write(0x100, size: 4, value: 0x4, now: Self.t0 + 2000)
        #expect(s.timers[0].deadline == 100, "the comparator, behind the counter's 200")
        #expect(s.fire(now: Self.t0 + 2000) == [.pulse(0)])
    }

    @Test("a level timer sets its status bit and holds its line until the status is written back; interrupts off, neither")
    func level() {
        var s = Self.running(timer: 2, config: 3 << 9 | 0x4 | 0x2, comparator: 100)
        #expect(s.fire(now: Self.t0 + 1000) == [.level(3, true)])
        #expect(s.read(0x020, size: 8, now: 0) == 0x4)
        #expect(s.write(0x020, size: 4, value: 0x3, now: 0) == [], "other bits: nothing")
        #expect(s.write(0x020, size: 4, value: 0x4, now: 0) == [.level(3, false)])
        #expect(s.isr == 0)
        // With its interrupt disabled it still runs and sets its bit, and raises nothing.
        var off = Self.running(timer: 1, config: 3 << 9 | 0x2, comparator: 100)
        #expect(off.fire(now: Self.t0 + 1000) == [.level(3, false)] && off.isr == 0x2)
    }

    @Test("a level timer switched to edge while it holds its interrupt lets it go: status cleared, its line lowered (before a new route), a state a snapshot restores")
    func levelToEdge() {
        // fuzz-machine-ports' reproducer: a level interrupt held, the timer rewritten edge-triggered.
        var s = Self.running(timer: 2, config: 3 << 9 | 0x4 | 0x2, comparator: 100)
        #expect(s.fire(now: Self.t0 + 1000) == [.level(3, true)])
        #expect(s.write(0x140, size: 8, value: 5 << 9 | 0x4, now: Self.t0 + 1000) == [.level(3, false)])
        #expect(s.isr == 0 && s.timers[2].route == 5)
        #expect(S.refusal(s.saved(now: Self.t0 + 1000)) == nil)
        // Level to level (a new route, the bit kept): nothing changes but the route, as QEMU's.
        var t = Self.running(timer: 2, config: 3 << 9 | 0x4 | 0x2, comparator: 100)
        _ = t.fire(now: Self.t0 + 1000)
        #expect(t.write(0x140, size: 8, value: 4 << 9 | 0x4 | 0x2, now: Self.t0 + 1000) == [] && t.isr == 0x4)
    }

    @Test("a periodic timer: SET_VAL writes the comparator and the period, later writes the period; it moves on by whole periods however late it fires")
    func periodic() {
        var s = S()
        _ = s.write(0x100, size: 8, value: 0x4 | 0x8 | 0x40, now: 0)
        _ = s.write(0x108, size: 8, value: 1000, now: 0)
        _ = s.write(0x108, size: 8, value: 300, now: 0)
        #expect(s.timers[0].comparator == 1000 && s.timers[0].period == 300 && s.timers[0].config & 0x40 == 0)
        _ = s.write(0x010, size: 8, value: 1, now: Self.t0)
        _ = s.fire(now: Self.t0) // timers 1 and 2 at ~0 (`running`)
        #expect(s.fire(now: Self.t0 + 10_000) == [.pulse(0)])
        #expect(s.timers[0].comparator == 1300 && s.timers[0].deadline == 1300)
        // Woken at counter 2250: 1300 + 4 * 300 = 2500, the first past it.
        #expect(s.fire(now: Self.t0 + 22_500) == [.pulse(0)])
        #expect(s.timers[0].comparator == 2500)
        // A 32-bit guest changes the period in halves: each lands in the period, not in
        // the comparator's other half (which gave back the old low half).
        _ = s.write(0x108, size: 4, value: 0x2345, now: Self.t0 + 22_500)
        _ = s.write(0x10c, size: 4, value: 0x1, now: Self.t0 + 22_500)
        #expect(s.timers[0].period == 0x1_0000_2345 && s.timers[0].comparator == 2500)
        _ = s.write(0x108, size: 4, value: 0x7745, now: Self.t0 + 22_500)
        #expect(s.timers[0].period == 0x1_0000_7745, "the low half again")
        #expect(S.advance(0, by: 1, past: 1 << 62) == 1 << 62 + 1, "no loop for a tiny period")
        #expect(S.advance(0xffff_fff0, by: 0x20, past: 0x1_0000_0005) == 0x1_0000_0010, "across the low half's wrap")
    }

    @Test("32-bit mode keeps the comparator and period to 32 bits and compares across the counter's low half")
    func mode32() throws {
        var s = S()
        _ = s.write(0x108, size: 8, value: 0x1_0000_0100, now: 0)
        _ = s.write(0x100, size: 8, value: 0x100 | 0x4, now: 0)
        #expect(s.timers[0].comparator == 0x100)
        // The high half takes nothing in 32-bit mode, not even SET_VAL's end (as QEMU).
        _ = s.write(0x100, size: 4, value: 0x100 | 0x4 | 0x8 | 0x40, now: 0)
        _ = s.write(0x10c, size: 4, value: 0x1234, now: 0)
        #expect(s.timers[0].comparator == 0x100 && s.timers[0].config & 0x40 != 0)
        _ = s.write(0x100, size: 4, value: 0x100 | 0x4, now: 0)
        _ = s.write(0x0f0, size: 8, value: 0x5_0000_0000, now: 0)
        _ = s.write(0x010, size: 8, value: 1, now: Self.t0)
        #expect(s.timers[0].deadline == 0x5_0000_0100)
        _ = s.fire(now: Self.t0) // timers 1 and 2 at ~0 (`running`)
        #expect(s.fire(now: Self.t0 + 2560) == [.pulse(0)])
        // A period written in 64-bit mode, then the timer switched to 32-bit mode: its low
        // 32 bits stay (as QEMU's), 0xffffffff here, a state a snapshot restores.
        var p = S()
        _ = p.write(0x100, size: 8, value: 0x8, now: 0)
        _ = p.write(0x108, size: 8, value: 0xffff_ffff, now: 0)
        _ = p.write(0x100, size: 8, value: 0x108, now: 0)
        #expect(p.timers[0].mode32 && p.timers[0].period == 0xffff_ffff)
        #expect(S.refusal(p.saved(now: 0)) == nil)
        var state = BuiltInDeviceState()
        state.hpet = p.saved(now: 0)
        #expect(try BuiltInDeviceStateTests.decode(String(decoding: state.encoded(), as: UTF8.self)).get() == state)
    }

    @Test("LegacyReplacement puts timers 0 and 1 on IRQ 0 and 8, holds the PIT silent while on, and lets those lines go when it changes; halting disarms and lowers a level line but keeps its status bit, restarting raises it again; disabling a timer's interrupt leaves it armed")
    func legacyAndHalt() {
        var s = Self.running(config: 5 << 9 | 0x4 | 0x2, comparator: 100)
        #expect(s.line(of: 0) == 5)
        #expect(s.write(0x010, size: 8, value: 3, now: Self.t0) == [.pit(enabled: false), .level(0, false), .level(8, false)])
        #expect(s.line(of: 0) == 0 && s.line(of: 1) == 8 && s.line(of: 2) == 0)
        #expect(s.fire(now: Self.t0 + 1000) == [.level(0, true)])
        #expect(s.write(0x010, size: 8, value: 2, now: Self.t0 + 1000) == [.level(0, false)])
        #expect(s.isr == 1 && s.timers.allSatisfy { $0.deadline == nil }, "the level timer's bit kept (QEMU's hpet_del_timer)")
        #expect(s.write(0x010, size: 8, value: 0, now: Self.t0) == [.level(0, false), .pit(enabled: true), .rtc], "the PIT's again, and IRQ 8 the RTC's")
        #expect(s.write(0x010, size: 8, value: 1, now: Self.t0 + 2000).first == .level(5, true), "restarted: the held interrupt again")
        var t = Self.running(config: 0x4, comparator: 100_000)
        #expect(t.write(0x100, size: 8, value: 0, now: Self.t0) == [])
        #expect(t.timers[0].deadline == 100_000)
        #expect(t.fire(now: Self.t0 + 1_000_000) == [.level(0, false)] && t.timers[0].deadline == nil)
    }

    @Test("a snapshot keeps the counter's value and which timers are armed; a restore sets them again from their comparators")
    func snapshot() throws {
        let s = Self.running(config: 0x4 | 0x8 | 0x100, comparator: 5000)
        let saved = s.saved(now: Self.t0 + 20_000)
        #expect(saved.counter == 2000 && saved.origin == 0 && saved.timers[0].deadline == 0)
        let line = saved.blobLine()
        #expect(line == "hpet 0x1 0x0 0x7d0 0x40000013c 0x1388 0x0 0x0 1 0x400000030 0xffffffffffffffff 0x0 0x0 0 0x400000030 0xffffffffffffffff 0x0 0x0 0")
        let decoded = try HPETState.decode(line.split(separator: " ", omittingEmptySubsequences: false), { LauncherError(.snapshot, $0) })
        #expect(decoded == saved)
        let restored = decoded.restored(now: 7)
        #expect(restored.count(at: 7 + 10) == 2001)
        #expect(restored.timers[0].deadline == 5000 && restored.nextFiring(now: 7) == 7 + 30_000)
        #expect(S().isReset && !saved.isReset)
        // In the launcher's blob, beside the other devices.
        var state = BuiltInDeviceState()
        state.hpet = saved
        #expect(try BuiltInDeviceStateTests.decode(String(decoding: state.encoded(), as: UTF8.self)).get() == state)
    }

    @Test("a damaged hpet line is refused in one line naming the value")
    func hostile() {
        let good = "0x1 0x0 0x7d0 0x40000013c 0x1388 0x0 0x0 1 0x400000030 0xffffffffffffffff 0x0 0x0 0 0x400000030 0x0 0x0 0x0 0"
        let cases: [(String, String)] = [
            ("0x4" + good.dropFirst(3), "hpet configuration 0x4 (bits 0 and 1 only)"),
            ("0x1 0x8" + good.dropFirst(7), "hpet interrupt status 0x8 (bits 0-2, one a timer)"),
            ("0x1 0x1" + good.dropFirst(7), "hpet interrupt status 0x1: timer 0 is not level-triggered"),
            ("0x1 0x0 +0x7d0" + good.dropFirst(13), "hpet counter '+0x7d0'"),
            (good.replacing("0x40000013c", with: "0x4000041fc"), "hpet timer 0 configuration 0x4000041fc (capabilities other than the HPET's, or FSB delivery)"),
            (good.replacing("0x40000013c", with: "0xff000013c"), "hpet timer 0 configuration 0xff000013c (capabilities other than the HPET's, or FSB delivery)"),
            (good.replacing("0x1388", with: "0x100000000"), "hpet timer 0 comparator 0x100000000 (32-bit mode)"),
            (good.replacing(" 0x0 0x0 1 ", with: " 0x100000000 0x0 1 "), "hpet timer 0 period 0x100000000 (32-bit mode)"),
            ("0x0" + good.dropFirst(3), "hpet timer 0 armed while the counter is halted"),
            (good.replacing(" 0x0 0x0 1 ", with: " 0x0 0x0 2 "), "hpet timer 0 armed '2' (0 or 1)"),
        ]
        for (values, message) in cases {
            let text = "vmm-launcher-devices 1\nhpet \(values)\nend\n"
            guard case let .failure(error) = BuiltInDeviceStateTests.decode(text) else { Issue.record("accepted: \(values)"); continue }
            #expect(error.message == "snap: launcher devices: \(message)", "\(values)")
        }
        let short = "vmm-launcher-devices 1\nhpet 0x1\nend\n"
        guard case let .failure(error) = BuiltInDeviceStateTests.decode(short) else { Issue.record("accepted"); return }
        #expect(error.message == "snap: launcher devices: line 'hpet 0x1': a device given twice, or the wrong number of values")
    }

    /// Polls `condition` (2 ms apart, about a minute at most: only a broken device waits that long).
    static func eventually(_ condition: () -> Bool) -> Bool {
        for _ in 0..<30_000 {
            if condition() { return true }
            usleep(2000)
        }
        return false
    }

    /// A clock the test moves (`HPET(clock:)`), and the lines its thread moved.
    final class Bench: @unchecked Sendable {
        let state = Mutex<(now: UInt64, pulses: Int)>((HPETTests.t0, 0))
        var now: UInt64 { state.withLock { $0.now } }
        var pulses: Int { state.withLock { $0.pulses } }
        func advance(_ ns: UInt64) { state.withLock { $0.now += ns } }
        func line(_ gsi: UInt32, _ high: Bool) { if high { state.withLock { $0.pulses += 1 } } }
    }

    /// A snapshot holds the HPET's thread (`BuiltInDevices.holdInterrupts`) from reading
    /// the devices until the irqchip is saved: a comparator that comes due meanwhile
    /// fires after the release, in the live VM, and once (the saved state has it armed).
    @Test("while held, the HPET's thread raises nothing, however much comes due, even woken; released, it fires what came due")
    func heldThreadRaisesNothing() throws {
        let bench = Bench()
        let hpet = HPET(clock: { bench.now })
        hpet.connectInterrupts(line: { bench.line($0, $1) }, pit: { _ in })
        hpet.write(0x100, size: 8, value: 2 << 9 | 0x40 | 0x8 | 0x4) // SET_VAL, periodic, enabled, pin 2
        hpet.write(0x108, size: 8, value: 1000) // comparator and period: 10 µs
        hpet.write(0x010, size: 8, value: 1)
        try hpet.startInterruptsIfArmed()
        defer { hpet.stopInterrupts() }
        bench.advance(100_000)
        #expect(Self.eventually { bench.pulses > 0 }, "the timer fires")
        hpet.thread.hold()
        let before = bench.pulses
        bench.advance(1_000_000) // 100 periods due
        let woken = hpet.thread.locked { () -> Int in
            hpet.thread.signal() // as a guest's write would
            return hpet.thread.heldWaits
        }
        #expect(Self.eventually { hpet.thread.locked { hpet.thread.heldWaits } > woken }, "the thread woke and found itself held")
        #expect(bench.pulses == before, "fired while held")
        hpet.thread.release()
        #expect(Self.eventually { bench.pulses > before }, "what came due fires once released")
    }

    @Test("1- and 2-byte and unaligned accesses, which QEMU's hpet_ram_ops refuses, read 0 and write nothing (system/memory.c); aligned 4 and 8 bytes are taken")
    func refusedAccesses() {
        var s = S()
        for (offset, size) in [(0x000, 1), (0x001, 1), (0x000, 2), (0x002, 4), (0x004, 8), (0x0f1, 4), (0x000, 3)] {
            #expect(s.read(UInt64(offset), size: size, now: 0) == 0, "\(offset) \(size)")
        }
        for (offset, size) in [(0x010, 1), (0x010, 2), (0x00e, 4), (0x00c, 8)] {
            #expect(s.write(UInt64(offset), size: size, value: ~0, now: Self.t0) == [], "\(offset) \(size)")
            #expect(s.read(0x010, size: 8, now: Self.t0) == 0, "the counter still halted, no LegacyReplacement")
        }
        _ = s.write(0x108, size: 4, value: 0x1234, now: 0)
        _ = s.write(0x10a, size: 2, value: 0xffff, now: 0)
        _ = s.write(0x10c, size: 8, value: 0xffff, now: 0)
        #expect(s.read(0x108, size: 8, now: 0) == 0xffff_ffff_0000_1234, "only the aligned 4-byte write landed")
        #expect(s.read(0x10c, size: 4, now: 0) == 0xffff_ffff)
    }
}
