import CKVM

/// Per-vCPU canary state: whether the next entry may be poisoned, the last few exits
/// (for diagnoses) and the repeated-fault counter. Touched only by the vCPU's thread
/// (or while it is not running), so it needs no lock.
public final class VCPUCanary: @unchecked Sendable {
    /// How many exits the history keeps.
    public static let historyCapacity = 8

    /// The same memory fault this many times in a row, with no other exit in between,
    /// stops the vCPU as `.stuck` (the handler is not called for the last one). Set it
    /// before the vCPU starts; at least 1.
    public var faultRepeatLimit = 3 {
        didSet { faultRepeatLimit = max(1, faultRepeatLimit) }
    }

    /// `KVM_RUN` failing with EAGAIN this many times in a row, with no exit in between,
    /// ends the vCPU's run with an error. EAGAIN is a kick (QEMU retries it too: an
    /// application processor woken while it waits for SIPI returns it), but a kernel
    /// that cannot enter the guest at all returns it at once, forever: KVM starts a
    /// worker task per VM on the first entry, and a pids cgroup or `RLIMIT_NPROC` at its
    /// limit refuses it. The loop then spun at full speed until killed.
    public static let againLimit = 100_000

    /// The hot fields below are written on every exit: lines of their own (CacheLinePad).
    private let padBefore = CacheLinePad()
    /// Whether the last exit leaves nothing for the kernel to read back.
    var mayPoison = true
    private let ring: UnsafeMutablePointer<ExitSummary>
    /// Exits recorded since the last reset (wrapping: 2^64 exits take centuries). The
    /// next slot is `recorded % historyCapacity`, a mask: one load, one add, one store
    /// per exit instead of two checked counters.
    private var recorded: UInt = 0
    private var lastFault: FaultKey?
    private(set) var repeatCount = 0
    /// `recorded` after the last counted fault's history record (carried past kicks):
    /// a fault is in a row with it only if no other exit was recorded in between, so
    /// the hot path pays nothing to break a run (a test and a branch an exit before).
    private var faultMark: UInt = 0
    /// EAGAIN entries in a row, and `recorded` after the last one: an exit in between
    /// moves `recorded` on, so the hot path pays nothing to break a run of them.
    private var againCount = 0
    private var againMark: UInt = 0
    private let padAfter = CacheLinePad()

    init() {
        // Written on every exit: lines of its own (CacheLinePad).
        ring = UnsafeMutableBufferPointer<ExitSummary>.allocateIsolated(capacity: Self.historyCapacity).baseAddress!
        ring.initialize(repeating: ExitSummary(), count: Self.historyCapacity)
    }

    deinit { ring.deallocate() }

    /// The last exits, oldest first.
    public var recentExits: [ExitSummary] {
        let filled = Int(min(recorded, UInt(Self.historyCapacity)))
        return (0..<filled).map { ring[Int((recorded &- UInt(filled) &+ UInt($0)) & Self.slotMask)] }
    }

    /// `historyCapacity` is a power of two.
    private static let slotMask = UInt(historyCapacity - 1)

    @inline(__always)
    func record(_ summary: ExitSummary) {
        ring[Int(recorded & Self.slotMask)] = summary
        recorded &+= 1
    }

    /// Identity of a memory fault for the repeat check: the (gpa, size, flags,
    /// errno), plus RIP for un-annotated faults, whose only identity is where they happen.
    struct FaultKey: Equatable {
        var gpa: UInt64, size: UInt64, flags: UInt64, errno: Int32, rip: UInt64
    }

    /// Counts a memory fault, after its history record (or, for a fault an interrupt hook
    /// made, after the kick's); returns how many times in a row it has now been seen.
    func countFault(_ key: FaultKey) -> Int {
        // In a row: nothing recorded since the last fault but this fault itself, or
        // nothing at all (the hook's fault, after a kick that carried the mark).
        let inRow = key == lastFault && (recorded == faultMark || recorded == faultMark &+ 1)
        if inRow { repeatCount += 1 } else { lastFault = key; repeatCount = 1 }
        faultMark = recorded
        return repeatCount
    }

    /// A kick does not break a run of faults: after its history record, the mark moves
    /// past it when it follows the run's last fault (or a kick that did).
    func carryFaultRun() {
        if faultMark &+ 1 == recorded { faultMark = recorded }
    }

    /// Counts an EAGAIN entry, after its history record; returns how many in a row.
    func countAgain() -> Int {
        againCount = recorded == againMark &+ 1 ? againCount &+ 1 : 1
        againMark = recorded
        return againCount
    }

    /// Breaks a run of faults without a history record: an exit an interrupt hook made.
    /// Any recorded exit other than a memory fault or a kick breaks one by itself.
    func resetFaults() {
        repeatCount = 0; lastFault = nil
    }

    /// Clears the history and counters (a recorded run replayed from the start).
    public func reset() {
        recorded = 0; repeatCount = 0; lastFault = nil; faultMark = 0; mayPoison = true; againCount = 0; againMark = 0
    }
}
