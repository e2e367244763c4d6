/// A handler's answer to one exit.
///
/// `.stop` and `.fail` are `indirect`: they end the vCPU, so their box is allocated once
/// a run, and the verdict every exit returns is one word in a register. Inline, a
/// `StopReason` made it 7 words, returned through memory and tested word by word for
/// `.handled` (15-34 instructions an exit to a Swift closure, `userpath`).
public enum ExitVerdict: Sendable {
    /// Done: the core completes the exit (copies IN/read data back) and re-enters the guest.
    case handled
    /// Not this handler's business: the dispatcher tries the next one, then the default.
    case notMine
    /// For a memory fault: the handler replaced the memory behind the faulting range (a
    /// fresh mapping or page over hardware-poisoned memory), so re-entering is safe.
    /// The only answer on which the core re-enters after EHWPOISON; `.handled` there
    /// stops the vCPU as `.hardwarePoison`. For any other exit it means `.handled`.
    case backingReplaced
    /// Stop this vCPU with the given reason (e.g. `.guestExit(code:)`).
    indirect case stop(StopReason)
    /// The handler failed: the vCPU stops with this message.
    indirect case fail(String)
}
