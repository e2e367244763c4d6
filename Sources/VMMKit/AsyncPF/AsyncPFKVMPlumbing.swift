import CKVM
import Glibc

/// The KVM pieces user-space async page faults need, each usable on its own:
/// MSRs routed to user space through a filter, exception payloads (so an injected #PF
/// carries its CR2), the async-PF CPUID bits, and #PF/NMI injection.
extension VirtualMachine {
    /// `KVM_X86_SET_MSR_FILTER`: reads and writes of `msrs` no longer reach the
    /// kernel's handlers; with `enableUserSpaceMSRExits` (FILTER reason) they arrive as
    /// `.rdmsr`/`.wrmsr` exits with `reason == KVM_MSR_EXIT_REASON_FILTER`. Every other
    /// MSR stays with the kernel. Replaces any filter set before; asking again for the
    /// MSRs already denied changes nothing and makes no ioctl. That matters because the
    /// kernel follows a filter change with `synchronize_srcu`, which once an in-kernel
    /// irqchip exists waits a whole grace period (6-10 ms on the CI hosts): a VMM that
    /// knows its MSRs can deny them before `createIRQChip()` (fast then), and the later
    /// request for the same set, a plugin's `route_msrs` say, is free.
    public func denyMSRs(_ msrs: [UInt32]) throws(VMMError) {
        guard kvm.hasExtension(KVM_CAP_X86_MSR_FILTER) else {
            throw .capabilityMissing(name: "KVM_CAP_X86_MSR_FILTER", what: "routing MSRs \(msrs.map { hex($0) }) to user space")
        }
        let wanted = msrs.sortedWithoutRepeats()
        _ = try liveFD() // the same set again after close is `.closed`, not a silent success
        try installedMSRFilter.withLock { installed throws(VMMError) in
            guard installed != wanted else { return }
            try setMSRFilter(denying: wanted)
            installed = wanted
        }
    }

    private func setMSRFilter(denying sorted: [UInt32]) throws(VMMError) {
        // One range per cluster of MSRs within 64 of each other: 8 bytes of bitmap each.
        var groups: [[UInt32]] = []
        for msr in sorted {
            if let first = groups.last?.first, msr - first < 64 { groups[groups.count - 1].append(msr) } else { groups.append([msr]) }
        }
        guard groups.count <= Int(KVM_MSR_FILTER_MAX_RANGES) else {
            throw .invalidArgument("denyMSRs: \(sorted.count) MSRs need \(groups.count) filter ranges; KVM allows \(KVM_MSR_FILTER_MAX_RANGES)")
        }
        let bitmaps = UnsafeMutablePointer<UInt64>.allocate(capacity: max(1, groups.count))
        defer { bitmaps.deallocate() }
        var filter = kvm_msr_filter()
        filter.flags = UInt32(KVM_MSR_FILTER_DEFAULT_ALLOW)
        withUnsafeMutableBytes(of: &filter.ranges) { raw in
            let ranges = raw.bindMemory(to: kvm_msr_filter_range.self)
            for (i, group) in groups.enumerated() {
                var allow = ~UInt64(0) // a 1 bit allows; 0 denies (sends it to user space)
                for msr in group { allow &= ~(UInt64(1) << UInt64(msr - group[0])) }
                bitmaps[i] = allow.littleEndian
                ranges[i] = kvm_msr_filter_range(flags: UInt32(KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE), nmsrs: 64,
                                                 base: group[0], bitmap: UnsafeMutableRawPointer(bitmaps + i).assumingMemoryBound(to: UInt8.self))
            }
        }
        _ = try vmIOCTL(CKVM_X86_SET_MSR_FILTER, "KVM_X86_SET_MSR_FILTER", &filter)
    }

    /// `KVM_CAP_EXCEPTION_PAYLOAD`: exceptions set through `KVM_SET_VCPU_EVENTS` may carry
    /// their payload (CR2 for #PF), which KVM applies only when the guest takes them.
    public func enableExceptionPayload() throws(VMMError) {
        guard kvm.hasExtension(KVM_CAP_EXCEPTION_PAYLOAD) else {
            throw .capabilityMissing(name: "KVM_CAP_EXCEPTION_PAYLOAD", what: "injecting #PF with its CR2")
        }
        try enableCapability(UInt32(KVM_CAP_EXCEPTION_PAYLOAD), args: [1])
    }

    /// Everything the VM needs before the async-PF state machine can own the protocol:
    /// the three MSRs exit to user space (so the kernel's own async PF stays off) and
    /// #PF can be injected with a CR2 payload.
    public func prepareUserSpaceAsyncPF() throws(VMMError) {
        try enableUserSpaceMSRExits(reasons: UInt64(KVM_MSR_EXIT_REASON_FILTER))
        try denyMSRs(AsyncPFABI.msrs)
        try enableExceptionPayload()
    }
}

extension VCPU {
    /// Sets this vCPU's CPUID (as `configureCPUID` does) with ASYNC_PF and ASYNC_PF_INT
    /// advertised in leaf 0x40000001 and ASYNC_PF_VMEXIT withdrawn (delivery as a #PF
    /// vmexit is for nested hypervisors; this implementation does not offer it).
    /// `advertise: false` withdraws all three, for guests that must not use async PF.
    public func advertiseAsyncPF(_ advertise: Bool = true) throws(VMMError) {
        guard let kvm = vm?.kvm else { throw .closed("virtual machine") }
        try configureCPUID(kvm, asyncPF: advertise)
    }

    /// Queues #PF for the next entry with CR2 = `address` as the exception payload: CR2
    /// changes only when the guest takes the fault. Needs `enableExceptionPayload()`.
    public func injectPageFault(address: UInt64, errorCode: UInt32) throws(VMMError) {
        var events = try events()
        events.exception.injected = 0
        events.exception.pending = 1
        events.exception.nr = AsyncPFABI.pageFaultVector
        events.exception.has_error_code = 1
        events.exception.error_code = errorCode
        events.exception_has_payload = 1
        events.exception_payload = address
        events.flags |= UInt32(KVM_VCPUEVENT_VALID_PAYLOAD)
        try setEvents(events)
    }

    /// `KVM_NMI`: queues an NMI for the next entry.
    public func injectNMI() throws(VMMError) {
        _ = try ioctl(try liveFD(), CKVM_NMI, "KVM_NMI")
    }

    /// Whether an exception, interrupt or NMI is already queued for the next entry.
    public func hasPendingEvent() throws(VMMError) -> Bool {
        let e = try events()
        return e.exception.injected != 0 || e.exception.pending != 0 || e.interrupt.injected != 0
            || e.nmi.injected != 0 || e.nmi.pending != 0
    }
}

extension Sequence<UInt32> {
    /// The MSR numbers sorted, each once. Not through a `Set<UInt32>`: its first use in
    /// a process scans every loaded image's conformance records, and MSR lists are built
    /// at every `vmm run` (`denyMSRs`, a plugin's `route_msrs`).
    func sortedWithoutRepeats() -> [UInt32] {
        var result: [UInt32] = []
        for msr in sorted() where result.last != msr { result.append(msr) }
        return result
    }
}
