import CKVM
import Glibc
import SystemPackage

/// What a VMM does to a stopped or paused VM before reading its state for a snapshot.
extension VCPU {
    /// Finishes an I/O or MMIO exit whose completion is still in `kvm_run`: the kernel
    /// applies IN/MMIO-read data (and advances RIP) only on the next `KVM_RUN`, so the
    /// registers read before that are mid-instruction. One `KVM_RUN` with
    /// `immediate_exit = 1` completes it and returns EINTR at once without running the
    /// guest (Documentation/virt/kvm/api.rst, KVM_RUN). The vCPU must be paused or stopped.
    public func completePendingIO() throws(VMMError) {
        let fd = try liveFD()
        guard !isRunning || isPaused else { throw .invalidArgument("vCPU \(id) is running: pause it before reading its state") }
        // Parked mid-instruction, the exit in kvm_run was dispatched and the loop's next
        // KVM_RUN completes it: a KVM_RUN here completed it and returned the next exit,
        // which nobody dispatched, and the resumed guest read stale MMIO data (a `rep
        // movsd` from the HPET's registers copied wrong values, 5 runs of 5).
        guard !parkedMidInstruction.load(ordering: .acquiring) else { throw Self.midInstruction(id, reason: runPage.pointee.exit_reason) }
        ckvm_set_immediate_exit(runPage, 1)
        let rc = ckvm_ioctl_value(fd, CKVM_RUN, 0)
        let err = Errno.current
        // Paused vCPUs keep immediate_exit set until resumed (the kick); stopped ones get it cleared.
        if !isPaused { ckvm_set_immediate_exit(runPage, 0) }
        // rc 0: completing the I/O produced another exit (a string instruction over
        // MMIO), which this call cannot dispatch. The run loop reaches a boundary before
        // it parks, so this means a guest chaining more exits than `completionLimit`.
        guard rc != 0 else { throw Self.midInstruction(id, reason: runPage.pointee.exit_reason) }
        guard err == .interrupted || err == .resourceTemporarilyUnavailable else {
            throw .ioctlFailed(name: "KVM_RUN with immediate_exit (vCPU \(id), completing pending I/O; rc \(rc))", errno: err)
        }
    }

    static func midInstruction(_ id: UInt32, reason: UInt32) -> VMMError {
        .invalidArgument("vCPU \(id) is in the middle of an instruction that needs another exit (reason \(reason)) to complete: resume it and try again")
    }
}

extension VirtualMachine {
    /// Replays the writes still queued in the coalesced ring through `dispatcher` (on
    /// `vcpu`'s behalf), so a device's state includes them. Returns a handler's stop
    /// reason, if one stopped. No-op without coalesced zones.
    public func drainCoalescedRing(_ dispatcher: ExitDispatcher, on vcpu: VCPU) -> StopReason? {
        guard coalescedRing.active.load(ordering: .acquiring) else { return nil }
        return coalescedRing.drain(dispatcher, on: vcpu)
    }
}
