import VMMKit

/// The RTC's interrupt output: raised from a thread of its own as the guest's clock
/// passes the events register B enables (`RTC`'s state, under its `DeviceThread`'s lock).
extension RTC {
    /// Raises the interrupt output through `line` when register C says "IRQ" (register B enables the
    /// periodic or update-ended interrupt and its flag is set) until the guest reads C,
    /// as QEMU's RTC does: on a thread of its own that sleeps until the next period or
    /// second while one is enabled, and for good while none is. Each raise lowers the
    /// line first, so it is an edge even where an older snapshot's restore (one that did
    /// not keep the raised output) left the line high.
    /// The thread starts when register B first enables an interrupt
    /// (`startInterruptsIfEnabled`): a guest that never does never has it.
    func connectInterrupts(line: @escaping @Sendable (Bool) -> Void) {
        thread.locked { self.line = line }
    }

    /// Starts the interrupt thread if register B enables an interrupt and none runs: after
    /// a guest's write and after a restore (before the vCPUs run).
    func startInterruptsIfEnabled() throws(VMMError) {
        try thread.start(when: { [self] in line != nil && ram[Self.registerB] & 0x70 != 0 }) { [self] in thread.serve(interruptPass) }
    }

    /// Ends the interrupt thread, if it started (the run is over); the output is left as it is.
    func stopInterrupts() { thread.stop() }

    /// One pass of the interrupt thread (`DeviceThread.serve`): raises the output when
    /// register C says "IRQ", else the seconds until the next event register B enables.
    private func interruptPass() -> Double? {
        let enabled = ram[Self.registerB] & 0x70
        guard enabled != 0, !raised else { return nil }
        let now = ticks()
        if flags(at: now) & 0x80 != 0 {
            raised = true
            line?(false)
            line?(true)
            return 0
        }
        var next = Int64.max
        // The update and alarm interrupts come at a second's end.
        if enabled & 0x30 != 0, clockRuns { next = ((now >> 15) &+ 1) << 15 }
        if enabled & 0x40 != 0, let shift = periodShift() { next = min(next, ((now >> shift) &+ 1) << shift) }
        guard next != .max else { return nil }
        // Ticks to seconds, rounded up by a microsecond: waking early costs a pass.
        return Double(next &- now) / Double(Self.ticksPerSecond) + 1e-6
    }
}
