import FuzzDriver

/// The HPET's registers (`HPETState`) under a program of the input's bytes, read as
/// (op, a, b, c) quadruples: op bits 0-1 a read, a write, time moving on (by (a, b) << c
/// nanoseconds, any amount) with the timers that are due fired, or a save and restore
/// through the snapshot blob; op bits 2-3 the access's size (1, 2, 4, 8 bytes); the
/// offset a << 2 | b & 3 (the whole block); the value one of a few shapes picked by c.
/// After every step: no trap; the state is one a snapshot restores (`refusal` nil) and
/// reads back through the blob; the status register holds only level-triggered timers'
/// bits; a timer is armed only while the counter runs and fires no earlier than now;
/// lines driven are a timer's route or IRQ 0 or 8.
func hpetProgram(_ input: UnsafeBufferPointer<UInt8>) {
    var s = HPETState()
    var now: UInt64 = 1_000_000
    let sizes = [1, 2, 4, 8]
    for at in stride(from: 0, to: input.count - 3, by: 4) {
        let op = input[at], a = input[at + 1], b = input[at + 2], c = input[at + 3]
        let offset = UInt64(a) << 2 | UInt64(b & 3)
        let size = sizes[Int(op >> 2 & 3)]
        let values: [UInt64] = [UInt64(c), UInt64(c & 0x1f) << 9 | UInt64(b), ~0, UInt64(c) &* 0x9e37_79b9_7f4a_7c15,
                                0x14c, 1, 3, UInt64(b) << 32 | UInt64(c)]
        let value = values[Int(c >> 5)]
        var changes: [HPETState.LineChange] = []
        switch op & 3 {
        case 0: _ = s.read(offset, size: size, now: now)
        case 1: changes = s.write(offset, size: size, value: value, now: now)
        case 2:
            let step = (UInt64(a) << 8 | UInt64(b)) << UInt64(c & 31)
            now = now.addingReportingOverflow(step).overflow ? now : now + step
            changes = s.fire(now: now)
        default:
            let saved = s.saved(now: now)
            check(HPETState.refusal(saved) == nil, "HPET: a state it holds is refused: \(HPETState.refusal(saved) ?? "")")
            do throws(LauncherError) {
                let back = try BuiltInDeviceState.decode(BuiltInDeviceState(hpet: saved).encoded(), version: 1, where: "fuzz")
                check(back.hpet == saved, "HPET: snapshot round trip")
            } catch {
                check(false, "HPET: a state it holds is refused at restore: \(error.message)")
            }
            s = saved.restored(now: now)
            check(s.saved(now: now) == saved, "HPET: restored, it saves as it was saved")
        }
        for change in changes {
            switch change {
            case let .level(gsi, _), let .pulse(gsi): check(gsi < 32, "HPET drove GSI \(gsi)")
            case let .pit(enabled): check(enabled == !s.legacy, "HPET: the PIT \(enabled ? "let run" : "held") against LegacyReplacement \(s.legacy)")
            case .rtc: check(!s.legacy, "HPET: IRQ 8 given back to the RTC in LegacyReplacement")
            }
        }
        check(HPETState.refusal(s.saved(now: now)) == nil, "HPET: \(HPETState.refusal(s.saved(now: now)) ?? "")")
        if let next = s.nextFiring(now: now) { check(next >= now, "HPET: a timer due before now") }
        for (n, t) in s.timers.enumerated() {
            check(t.deadline == nil || s.enabled, "HPET: timer \(n) armed while the counter is halted")
            check(s.isr & (1 << UInt64(n)) == 0 || t.config & HPETState.TimerConfig.level != 0, "HPET: status bit of edge timer \(n)")
        }
    }
}
