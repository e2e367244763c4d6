import CUFFD
import Synchronization

/// Per-vCPU hooks for engines that work beside the run loop (the demand pager): which
/// kernel thread runs the vCPU, and a way to turn a kick into an event the vCPU thread
/// handles itself.
public final class VCPUHooks: @unchecked Sendable {
    /// The Linux thread id of the thread running the loop (0 before it starts): the id
    /// userfaultfd reports with `UFFD_FEATURE_THREAD_ID`.
    public var threadID: Int32 { tid.load(ordering: .acquiring) }
    let tid = Atomic<Int32>(0)

    /// Called on the vCPU thread after each kick (`KVM_RUN` = EINTR). A non-nil result
    /// is dispatched like an exit (e.g. a memory fault the vCPU should resolve itself).
    /// Set before the vCPU starts.
    public var onInterrupt: (@Sendable (VCPU) -> VMExit?)?

    /// The seccomp filter the vCPU thread installs on itself before its first KVM_RUN
    /// (Seccomp.swift); nil: none. Set before the vCPU starts.
    public var seccomp: SeccompPolicy?

    init() {}
}

extension VCPU {
    /// Sends the kick signal to the vCPU thread without asking it to stop or pause: a
    /// ring-3 vCPU blocked on a missing page returns EINTR, and `hooks.onInterrupt` runs.
    public func signalThread() { control.signal() }
}
