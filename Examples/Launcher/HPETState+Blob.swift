import VMMKit

/// The HPET's line in the launcher's device blob (`BuiltInDeviceState`,
/// Docs/SnapshotFormat.md): `hpet CONFIG STATUS COUNTER`, then for each of the three
/// timers `CONFIG COMPARATOR PERIOD FSB ARMED`; numbers in `0x` hex, ARMED 0 or 1.
/// COUNTER is the main counter when the snapshot was taken (a tick before the earliest
/// deadline a timer had reached without firing, if one had); an armed timer is set again
/// from its comparator on restore, as QEMU's `hpet_set_timer`.
extension HPETState {
    static let blobWords = 4 + 5 * timerCount

    /// The state with the counter at `now` in `counter` and each armed timer's deadline
    /// as 0: what a snapshot writes, independent of when it was read.
    func saved(now: UInt64) -> HPETState {
        var s = self
        // A snapshot's hold keeps the interrupt thread from firing while the counter runs
        // on: a timer due meanwhile is kept due by saving the counter a tick before the
        // earliest such deadline (a value the paused guest never read), so the restored
        // timers fire it at once, as the hold's release does. Saved at the counter, a
        // 32-bit timer's comparator left behind it was set 2^32 ticks on (QEMU's
        // `hpet_calculate_cmp64`): a restored periodic timer fell silent for 43 s.
        let current = count(at: now)
        let behind = timers.compactMap { $0.deadline.map { current &- $0 } }.filter { $0 > 0 && $0 < 1 << 63 }.max()
        s.counter = behind.map { current &- $0 &- 1 } ?? current
        s.origin = 0
        for n in 0..<Self.timerCount where s.timers[n].deadline != nil { (s.timers[n].deadline, s.timers[n].afterWrap) = (0, nil) }
        return s
    }

    /// A saved state running again from `now`: the counter goes on from its value, and
    /// each timer that was armed is set from its comparator (a 32-bit one-shot timer waiting
    /// for the wrap before its match is set the same way again; one past the wrap, for the
    /// match alone).
    func restored(now: UInt64) -> HPETState {
        var s = self
        s.origin = now
        for n in 0..<Self.timerCount where s.timers[n].deadline != nil { s.arm(n, now: now) }
        return s
    }

    /// Whether it is as after a reset (a blob leaves such a device out).
    var isReset: Bool { self == HPETState() }

    func blobLine() -> String {
        (["hpet", hex(config), hex(isr), hex(counter)] + timers.flatMap { t in
            [hex(t.config), hex(t.comparator), hex(t.period), hex(t.fsb), t.deadline == nil ? "0" : "1"]
        }).joined(separator: " ")
    }

    /// `words` (the line split at spaces, `hpet` first, `blobWords` of them), every value checked.
    static func decode(_ words: [Substring], _ bad: (String) -> LauncherError) throws(LauncherError) -> HPETState {
        func value(_ i: Int, _ what: String) throws(LauncherError) -> UInt64 {
            guard let v = BuiltInDeviceState.hexValue(words[i], UInt64.self) else { throw bad("hpet \(what) \(String(words[i]).quotedForMessage)") }
            return v
        }
        var s = HPETState()
        s.config = try value(1, "configuration")
        s.isr = try value(2, "interrupt status")
        s.counter = try value(3, "counter")
        for n in 0..<timerCount {
            let at = 4 + 5 * n
            var t = Timer()
            t.config = try value(at, "timer \(n) configuration")
            t.comparator = try value(at + 1, "timer \(n) comparator")
            t.period = try value(at + 2, "timer \(n) period")
            t.fsb = try value(at + 3, "timer \(n) FSB route")
            guard words[at + 4] == "0" || words[at + 4] == "1" else { throw bad("hpet timer \(n) armed \(String(words[at + 4]).quotedForMessage) (0 or 1)") }
            t.deadline = words[at + 4] == "1" ? 0 : nil
            s.timers[n] = t
        }
        if let why = refusal(s) { throw bad(why) }
        return s
    }

    /// Why `s` (from a snapshot) is not a state this HPET reaches, or nil.
    static func refusal(_ s: HPETState) -> String? {
        guard s.config & ~Config.writable == 0 else { return "hpet configuration \(hex(s.config)) (bits 0 and 1 only)" }
        guard s.isr & ~UInt64(0x7) == 0 else { return "hpet interrupt status \(hex(s.isr)) (bits 0-2, one a timer)" }
        guard s.timers.count == timerCount else { return "hpet: \(s.timers.count) timers, not \(timerCount)" }
        for (n, t) in s.timers.enumerated() {
            guard t.config & ~TimerConfig.writable == TimerConfig.reset else {
                return "hpet timer \(n) configuration \(hex(t.config)) (capabilities other than the HPET's, or FSB delivery)"
            }
            // Any period a guest writes is kept (QEMU's since 2024); 32 bits in 32-bit mode.
            // A blob written before, with at most 63 bits and only enabled timers armed or
            // holding a status bit, is such a state too.
            guard !t.mode32 || t.comparator <= 0xffff_ffff else { return "hpet timer \(n) comparator \(hex(t.comparator)) (32-bit mode)" }
            guard !t.mode32 || t.period <= 0xffff_ffff else { return "hpet timer \(n) period \(hex(t.period)) (32-bit mode)" }
            guard t.deadline == nil || s.enabled else { return "hpet timer \(n) armed while the counter is halted" }
            guard s.isr & (1 << UInt64(n)) == 0 || t.config & TimerConfig.level != 0 else {
                return "hpet interrupt status \(hex(s.isr)): timer \(n) is not level-triggered"
            }
        }
        return nil
    }
}
