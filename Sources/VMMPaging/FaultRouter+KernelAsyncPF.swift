import Glibc
import VMMKit

/// KVM's own async page fault, with an in-kernel LAPIC: a ring-3 fault on a missing
/// userfaultfd page with interrupts enabled is not waited for on the vCPU thread. KVM
/// tries the page without waiting, hands the blocking fault to a kernel worker (whose tid
/// the userfaultfd message carries, not the vCPU's) and, because the guest enabled the
/// async-PF MSRs in user space rather than in KVM, "artificially halts" the vCPU in the
/// kernel until the page arrives. Its guest would never learn of the fault, and no other
/// guest task would run meanwhile.
///
/// A kick gets the vCPU out of that halt (KVM_RUN = EINTR, the instruction not executed),
/// and an exception queued through KVM_SET_VCPU_EVENTS makes KVM consider it runnable
/// again although its own async work is still pending (measured on kvm_pvm, 6.18:
/// AsyncPFIRQChipTests). So a worker's fault is posted, like a vCPU's own, to the vCPU
/// KVM halted for it, whose AsyncPF handler then injects "not present"; KVM's worker
/// finishes when the page is installed and clears the halt.
extension FaultRouter {
    /// How long the router waits for the halted vCPU to be asleep: the worker may fault
    /// before the vCPU thread has gone to sleep.
    static let kernelHaltWaitNanoseconds = 2_000_000

    /// The vCPU a kernel worker's fault belongs to: one whose guest wants its faults
    /// (async PF enabled), with no fault posted to it yet, whose thread sleeps in the
    /// kernel. nil when there is none (a VMM thread touched the page, or no guest uses
    /// async PF): the router then installs the page itself.
    func kernelAsyncPFVCPU() -> VCPU? {
        guard let wants = pager.vcpuWantsFaults else { return nil }
        let candidates = vcpus.filter { $0.hooks.threadID != 0 && wants($0.id) && pager.hasNoPost(for: $0.id) }
        guard !candidates.isEmpty else { return nil }
        var waited = 0
        while true {
            if let asleep = candidates.first(where: { Self.threadSleeps($0.hooks.threadID) }) { return asleep }
            guard waited < Self.kernelHaltWaitNanoseconds else { return nil }
            var pause = timespec(tv_sec: 0, tv_nsec: 50_000)
            nanosleep(&pause, nil)
            waited += 50_000
        }
    }

    /// Whether thread `tid` of this process is asleep (state S or D in
    /// /proc/self/task/TID/stat; the state follows the name's closing parenthesis).
    static func threadSleeps(_ tid: Int32) -> Bool {
        let fd = open("/proc/self/task/\(tid)/stat", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
        guard n > 0, let close = buffer[0..<n].lastIndex(of: UInt8(ascii: ")")), close + 2 < n else { return false }
        let state = buffer[close + 2]
        return state == UInt8(ascii: "S") || state == UInt8(ascii: "D")
    }
}
