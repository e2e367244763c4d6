import VMMLoader

/// The registers of QEMU's HPET (`hw/timer/hpet.c`, as the `pc` machine has it): a 64-bit
/// main counter at 100 MHz and three timers, each a comparator that interrupts once
/// (one-shot) or every `period` ticks (periodic), edge- or level-triggered, in 64- or
/// 32-bit mode, through the I/O APIC pin its route field names, or (LegacyReplacement)
/// timer 0 on IRQ 0 and timer 1 on IRQ 8. A value: time comes in as the host's
/// monotonic nanoseconds and interrupts go out as `LineChange`s, so every rule is tested
/// without a clock or a VM (`HPETTests`); `HPET` is the device around it.
///
/// As QEMU's since 2024 (`hpet_set_timer`, `hpet_calculate_cmp64`, `update_irq`): a timer
/// is set whenever the counter starts and at every write to its configuration or
/// comparator while the counter runs, whether or not its interrupt is enabled; a 64-bit
/// comparator behind the counter fires at once; a 32-bit one fires when the counter's low
/// half comes round to it (at most 2^32 ticks on), and a 32-bit one-shot timer whose match
/// lies past that wrap interrupts at the wrap too; a level-triggered timer that fires sets
/// its status bit even with its interrupt disabled (the line is raised only while it and
/// the counter are enabled), and halting the counter keeps the bit, lowers the line and
/// raises it again when the counter restarts; a period is taken as written (32 bits in
/// 32-bit mode). The counter is written only while halted; periodic comparator writes set
/// the period (and the comparator too with SET_VAL); reads and writes of 1 to 8 bytes reach
/// the bytes of the 64-bit register they fall in. Not modelled: FSB (MSI) delivery (no
/// timer offers it; the route register is kept, unused); QEMU's nanosecond deadline
/// overflowing for a 64-bit comparator more than about 2^63/10 ticks (292 years) ahead.
/// In LegacyReplacement mode the PIT is held silent, as QEMU's `pit_enabled` line does
/// (`LineChange.pit`).
struct HPETState: Equatable {
    static let base = PCFirmware.hpetAddress
    static let size: UInt64 = 0x400
    static let timerCount = 3
    /// The counter's period, femtoseconds: 10 ns, 100 MHz.
    static let periodFS: UInt64 = 10_000_000
    static let nsPerTick: UInt64 = 10
    /// Revision 1, 3 timers, 64-bit counter, LegacyReplacement capable, vendor 0x8086;
    /// the period above it. The ACPI HPET table's event timer block ID is its low half.
    static let capabilities: UInt64 = periodFS << 32 | UInt64(PCFirmware.hpetBlockID)

    enum Config {
        static let enable: UInt64 = 1 << 0, legacy: UInt64 = 1 << 1
        static let writable: UInt64 = 0x3
    }

    enum TimerConfig {
        static let level: UInt64 = 1 << 1, enable: UInt64 = 1 << 2, periodic: UInt64 = 1 << 3
        static let periodicCapable: UInt64 = 1 << 4, size64: UInt64 = 1 << 5, setValue: UInt64 = 1 << 6
        static let mode32: UInt64 = 1 << 8, routeShift: UInt64 = 9, routeMask: UInt64 = 0x1f << 9
        /// Level, enable, periodic, SET_VAL, 32-bit mode, route (QEMU's mask without FSB_EN).
        static let writable: UInt64 = 0x3f4e
        /// What a timer reads after a reset: periodic capable, 64-bit; I/O APIC pin 2
        /// the one route offered (QEMU `pc`'s `hpet-intcap`).
        static let reset: UInt64 = 0x4 << 32 | periodicCapable | size64
    }

    struct Timer: Equatable {
        var config = TimerConfig.reset
        var comparator = ~UInt64(0)
        var period: UInt64 = 0
        /// The FSB route register: kept and read back, never used.
        var fsb: UInt64 = 0
        /// The counter value at which it fires next, while armed (QEMU's `cmp64`, or the
        /// wrap before it).
        var deadline: UInt64?
        /// A 32-bit one-shot timer's match while `deadline` is the low half's wrap before
        /// it (QEMU's `wrap_flag`); nil otherwise.
        var afterWrap: UInt64?

        var enabled: Bool { config & TimerConfig.enable != 0 }
        var periodic: Bool { config & TimerConfig.periodic != 0 }
        var mode32: Bool { config & TimerConfig.mode32 != 0 }
        var route: UInt32 { UInt32(truncatingIfNeeded: (config & TimerConfig.routeMask) >> TimerConfig.routeShift) }
    }

    /// An interrupt line to drive: a GSI (I/O APIC pin) raised or lowered, or pulsed
    /// (raised and lowered: an edge); or the PIT's output let run or held silent, as
    /// LegacyReplacement mode leaves or takes IRQ 0 (QEMU's `pit_enabled` line).
    enum LineChange: Equatable {
        case level(UInt32, Bool)
        case pulse(UInt32)
        case pit(enabled: Bool)
        /// IRQ 8 given back to the RTC, at the level its output holds (`HPET.rtcLine`).
        case rtc
    }

    var config: UInt64 = 0
    var isr: UInt64 = 0
    /// The main counter: its value while halted; while running, its value at `origin`.
    var counter: UInt64 = 0
    /// Host nanoseconds at which the running counter read `counter`.
    var origin: UInt64 = 0
    var timers = [Timer](repeating: Timer(), count: timerCount)

    var enabled: Bool { config & Config.enable != 0 }
    var legacy: Bool { config & Config.legacy != 0 }

    /// The main counter at host time `now` (ns).
    func count(at now: UInt64) -> UInt64 {
        guard enabled, now > origin else { return counter }
        return counter &+ (now - origin) / Self.nsPerTick
    }

    /// The host time (ns) at which the running counter reaches `ticks` (at or after `now`).
    func time(ofTick ticks: UInt64, now: UInt64) -> UInt64 {
        let ahead = ticks &- count(at: now)
        guard ahead < 1 << 63 else { return now } // behind: now
        let (ns, overflow) = ahead.multipliedReportingOverflow(by: Self.nsPerTick)
        let (at, overflow2) = now.addingReportingOverflow(ns)
        return overflow || overflow2 ? .max : at
    }

    /// The GSI timer `n` drives: its route, or IRQ 0 and 8 for timers 0 and 1 in
    /// LegacyReplacement mode, as QEMU's `update_irq` (hw/timer/hpet.c) raises them. With
    /// `VirtualMachine.pcGSIRouting` GSI 0 is the PIT's ISA IRQ 0 (I/O APIC pin 2 and the
    /// master PIC's input 0) and route 2, the one offered, GSI 2 (pin 2 alone).
    func line(of n: Int) -> UInt32 {
        if legacy && n <= 1 { return n == 0 ? 0 : 8 }
        return timers[n].route
    }

    // MARK: Registers

    /// Whether QEMU's HPET takes an access: `hpet_ram_ops` (hw/timer/hpet.c) is valid for 4
    /// and 8 bytes, aligned (its `.valid.unaligned` unset). QEMU's memory core answers any
    /// other access itself (`memory_region_dispatch_read`/`_write`, system/memory.c): a read
    /// gives `unassigned_mem_read`'s 0 and a write is dropped, never reaching a register.
    static func valid(_ offset: UInt64, size: Int) -> Bool {
        offset < Self.size && (size == 4 || size == 8) && offset & UInt64(size - 1) == 0
    }

    /// `size` bytes at `offset` into the register block, at host time `now` (0 for an
    /// access QEMU's refuses, `valid`).
    func read(_ offset: UInt64, size: Int, now: UInt64) -> UInt64 {
        guard Self.valid(offset, size: size) else { return 0 }
        let shift = (offset & 7) * 8
        let value = register(offset & ~7, now: now) >> shift
        return size == 8 ? value : value & (1 << UInt64(size * 8) - 1)
    }

    private func register(_ offset: UInt64, now: UInt64) -> UInt64 {
        switch offset {
        case 0x000: return Self.capabilities
        case 0x010: return config
        case 0x020: return isr
        case 0x0f0: return count(at: now)
        case 0x100..<0x100 + 0x20 * UInt64(Self.timerCount):
            let t = timers[Int((offset - 0x100) / 0x20)]
            switch offset & 0x1f {
            case 0x00: return t.config
            case 0x08: return t.comparator
            case 0x10: return t.fsb
            default: return 0
            }
        default: return 0
        }
    }

    /// A write of `size` bytes of `value` at `offset` at host time `now` (dropped if QEMU's
    /// refuses it, `valid`); the interrupt lines it changes, in order.
    mutating func write(_ offset: UInt64, size: Int, value: UInt64, now: UInt64) -> [LineChange] {
        guard Self.valid(offset, size: size) else { return [] }
        let at = offset & ~7
        let shift = (offset & 7) * 8
        let bytes = size == 8 ? ~UInt64(0) : (1 << UInt64(size * 8)) - 1
        let mask = bytes << shift // what of the 64-bit register is written
        let old = register(at, now: now)
        let merged = old & ~mask | (value << shift) & mask
        var changes: [LineChange] = []
        switch at {
        case 0x010: writeConfig(merged & Config.writable | config & ~Config.writable, now: now, &changes)
        case 0x020:
            for n in 0..<Self.timerCount where merged & mask & isr & (1 << UInt64(n)) != 0 { update(n, raise: false, &changes) }
        case 0x0f0: if !enabled { counter = merged }
        case 0x100..<0x100 + 0x20 * UInt64(Self.timerCount):
            let n = Int((at - 0x100) / 0x20)
            switch at & 0x1f {
            case 0x00: writeTimerConfig(n, merged, now: now, &changes)
            // A periodic timer's period takes the bytes written into the period, as QEMU's
            // `deposit64` does: merged into the comparator, a 32-bit guest's second half
            // brought back the comparator's other half, not the period's.
            // In 32-bit mode the high half reads 0 and takes nothing: QEMU ignores the write
            // (it cleared SET_VAL and re-armed the timer here).
            case 0x08 where timers[n].mode32 && shift >= 32: break
            case 0x08: writeComparator(n, merged, period: timers[n].period & ~mask | (value << shift) & mask, now: now)
            case 0x10: timers[n].fsb = merged
            default: break
            }
        default: break
        }
        return changes
    }

    private mutating func writeConfig(_ new: UInt64, now: UInt64, _ changes: inout [LineChange]) {
        let old = config
        if new & Config.enable != 0, old & Config.enable == 0 {
            // Every timer set, a level interrupt held while halted raised again (QEMU's
            // loop over `update_irq(t, 1)` and `hpet_set_timer`).
            origin = now
            config = new
            for n in 0..<Self.timerCount {
                if timers[n].enabled, isr & (1 << UInt64(n)) != 0 { update(n, raise: true, &changes) }
                arm(n, now: now)
            }
        } else if new & Config.enable == 0, old & Config.enable != 0 {
            // `hpet_del_timer`: a level timer's status bit stays, its line goes down.
            counter = count(at: now)
            config = new
            for n in 0..<Self.timerCount {
                (timers[n].deadline, timers[n].afterWrap) = (nil, nil)
                if isr & (1 << UInt64(n)) != 0 { update(n, raise: true, &changes) }
            }
        }
        config = new
        // LegacyReplacement moved timers 0 and 1 to or from IRQ 0 and 8: what they held is
        // let go, the PIT (IRQ 0's again, or the HPET's) let run or held, and IRQ 8 given
        // back to the RTC at its output's level, in QEMU's order (`hpet_ram_write`).
        if (new ^ old) & Config.legacy != 0 {
            changes += new & Config.legacy != 0 ? [.pit(enabled: false), .level(0, false), .level(8, false)]
                : [.level(0, false), .pit(enabled: true), .rtc]
        }
    }

    private mutating func writeTimerConfig(_ n: Int, _ merged: UInt64, now: UInt64, _ changes: inout [LineChange]) {
        // Leaving level-triggered mode ends the interrupt the timer holds: its status bit
        // cleared, its line (the one it holds, before any new route) lowered, as QEMU's
        // `deactivating_bit(HPET_TN_TYPE_LEVEL)`. Kept, an edge timer's status bit held the
        // line high for ever and made a state no snapshot restores.
        if timers[n].config & TimerConfig.level != 0, merged & TimerConfig.level == 0 { update(n, raise: false, &changes) }
        var t = timers[n]
        let wasEnabled = t.enabled
        t.config = t.config & ~TimerConfig.writable | merged & TimerConfig.writable
        if t.mode32 {
            t.comparator &= 0xffff_ffff
            t.period &= 0xffff_ffff
        }
        timers[n] = t
        // Enabling the interrupt of a level timer whose bit is set raises its line;
        // disabling it leaves the line as it is (QEMU lowers it at the next firing or when
        // the guest clears the bit). Any write sets the timer again while the counter runs.
        if t.enabled, !wasEnabled, isr & (1 << UInt64(n)) != 0 { update(n, raise: true, &changes) }
        if enabled { arm(n, now: now) }
    }

    private mutating func writeComparator(_ n: Int, _ merged: UInt64, period: UInt64, now: UInt64) {
        var t = timers[n]
        if !t.periodic || t.config & TimerConfig.setValue != 0 { t.comparator = t.mode32 ? merged & 0xffff_ffff : merged }
        // The period as written, as QEMU's since 2024 (it no longer clamps a 32-bit one to
        // 0x7fffffff); 32 bits in 32-bit mode.
        if t.periodic { t.period = t.mode32 ? period & 0xffff_ffff : period }
        t.config &= ~TimerConfig.setValue
        timers[n] = t
        if enabled { arm(n, now: now) }
    }

    /// Sets timer `n` (QEMU's `hpet_set_timer`): to fire when the counter reaches its
    /// comparator, at once if a 64-bit one is behind; a 32-bit one at the next counter value
    /// whose low half matches it, and a one-shot one whose match lies past the low half's
    /// next wrap at that wrap first (`afterWrap`).
    mutating func arm(_ n: Int, now: UInt64) {
        let current = count(at: now)
        let t = timers[n]
        timers[n].afterWrap = nil
        guard t.mode32 else {
            // The comparator itself, behind or not: `fire` finds one behind due at once and
            // steps a periodic one on from it (QEMU's `cmp64`). Armed at the counter, a
            // periodic timer lost its phase: comparator 7, period 7, counter 1000 gave 1007, not 1001.
            timers[n].deadline = t.comparator
            return
        }
        var target = current & ~0xffff_ffff | t.comparator & 0xffff_ffff // `deposit64`
        if target < current { target &+= 1 << 32 }
        let wrap = (current | 0xffff_ffff) &+ 1
        if !t.periodic, target > wrap, wrap > current {
            (timers[n].deadline, timers[n].afterWrap) = (wrap, target)
        } else {
            timers[n].deadline = target
        }
    }

    // MARK: Time

    /// The earliest host time (ns) at which an armed timer fires, or nil.
    func nextFiring(now: UInt64) -> UInt64? {
        guard enabled else { return nil }
        return timers.compactMap { $0.deadline.map { time(ofTick: $0, now: now) } }.min()
    }

    /// Fires every armed timer whose deadline the counter has reached at `now`: a
    /// periodic one moves its comparator on by whole periods past the counter and stays
    /// armed, a one-shot one is done. The lines they drive, in order.
    mutating func fire(now: UInt64) -> [LineChange] {
        guard enabled else { return [] }
        let current = count(at: now)
        var changes: [LineChange] = []
        for n in 0..<Self.timerCount {
            guard let deadline = timers[n].deadline, current &- deadline < 1 << 63 else { continue }
            let t = timers[n]
            if let match = t.afterWrap {
                (timers[n].deadline, timers[n].afterWrap) = (match, nil)
            } else if t.periodic, t.period != 0 {
                // On from the match just reached, in whole periods (QEMU's `cmp64 += period`).
                let next = Self.advance(deadline, by: t.period, past: current)
                timers[n].comparator = t.mode32 ? next & 0xffff_ffff : next
                // A period of 2^63 or more wraps the sum behind the counter: the next match
                // is some 2^64 ticks away (centuries), so the timer is done. Armed at the
                // counter instead, it was due at every pass: 100,000 interrupts a second.
                timers[n].deadline = next &- current < 1 << 63 ? next : nil
            } else {
                timers[n].deadline = nil
            }
            update(n, raise: true, &changes)
        }
        return changes
    }

    /// `match` (at or behind `current`) plus the fewest whole periods that put it past
    /// `current`, without a loop a tiny period would make long. QEMU's loop stops at a value
    /// equal to the counter and fires again at once; this one, whose interrupt thread often
    /// wakes on the very tick, goes a period on instead. Wraps past 2^64 as QEMU's sum does.
    static func advance(_ match: UInt64, by period: UInt64, past current: UInt64) -> UInt64 {
        match &+ ((current &- match) / period &+ 1) &* period
    }

    /// QEMU's `update_irq`: a firing level-triggered timer (`raise`) sets its status bit
    /// whether or not its interrupt is enabled ("the timer will still operate and generate
    /// appropriate status bits"), anything else clears it; the line is held (level) or
    /// pulsed (edge) only for a firing timer while it and the counter are enabled, and
    /// lowered otherwise.
    private mutating func update(_ n: Int, raise: Bool, _ changes: inout [LineChange]) {
        let bit = UInt64(1) << UInt64(n)
        let gsi = line(of: n)
        let t = timers[n]
        let level = t.config & TimerConfig.level != 0
        if raise, level { isr |= bit } else { isr &= ~bit }
        if raise, t.enabled, enabled {
            changes.append(level ? .level(gsi, true) : .pulse(gsi))
        } else {
            changes.append(.level(gsi, false))
        }
    }
}
