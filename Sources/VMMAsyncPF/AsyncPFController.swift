import Glibc
import VMMKit
import VMMPaging

/// User-space async page faults for a VM whose RAM is demand-paged by a `DemandPager`
/// (blocking mode): instead of stalling a ring-3 vCPU on a missing page, the guest is
/// told "not present" and runs another task; the page is fetched in the background and
/// "ready" is delivered when it is installed. Linux's guest ABI, unchanged; the host
/// side keeps the state Thomas Gleixner proposed (see `AsyncPFVCPUState`).
///
/// Where faults come from: the pager's fault router kicks a vCPU blocked on a missing
/// page; at CPL 3 the kick leaves the faulting instruction unexecuted and the vCPU
/// thread gets the fault as a memory-fault event. This controller claims those events
/// ahead of the pager (priority 100) and lets the state machine decide: async "not
/// present", a halt (the page is already on its way), or a synchronous fetch. Faults at
/// CPL 0 never reach it: a kick cannot get a ring-0 vCPU out of the kernel there (no
/// clean boundary), and the router installs the page itself.
///
/// Usage: create and set up the vCPUs (`setupLongMode` sets CPUID, which `attach`
/// extends), then `attach` (which also attaches the pager), then `vm.run(dispatcher)`,
/// then `close()`.
///
/// Why delivery is CPL-3-only by default, and the hole that remains: see
/// Docs/AsyncPageFaults.md. In short, NMIs, #MC and #DB raised inside the guest (and the
/// faults their handlers take) never leave the guest, so the host cannot hold them
/// back while an async #PF is unread; at CPL 3 the guest's #PF entry is the only place
/// such a window exists, and Linux saves CR2 in its NMI handler.
public final class AsyncPFController: @unchecked Sendable {
    public let pager: DemandPager
    public let policy: AsyncPFPolicy
    private let fetcher: AsyncPFFetcher
    /// By vCPU id; filled by `attach`, read-only once the vCPUs run.
    private var slots: [UInt32: AsyncPFSlot] = [:]

    public init(pager: DemandPager, policy: AsyncPFPolicy = AsyncPFPolicy()) throws(VMMError) {
        guard pager.mode == .blocking else {
            throw .invalidArgument("async PF needs the demand pager in blocking mode: in SIGBUS mode a ring-3 fault carries no address")
        }
        self.pager = pager
        self.policy = policy
        self.fetcher = try AsyncPFFetcher()
    }

    deinit { close() }

    /// Routes the three MSRs to user space, advertises the CPUID bits (withdraws them
    /// when `policy.featuresAdvertised` is false), attaches the pager, and registers the
    /// handlers and kick hooks. Call once, before the vCPUs start.
    public func attach(to vm: VirtualMachine, dispatcher: ExitDispatcher) throws(VMMError) {
        guard slots.isEmpty else { throw .invalidArgument("async PF: attach called twice") }
        try vm.prepareUserSpaceAsyncPF()
        let vcpus = vm.vcpus
        for vcpu in vcpus {
            try vcpu.advertiseAsyncPF(policy.featuresAdvertised)
            slots[vcpu.id] = AsyncPFSlot(vcpu: vcpu, policy: policy, pager: pager, fetcher: fetcher)
        }
        try pager.attach(to: dispatcher, vcpus: vcpus)
        for vcpu in vcpus {
            // Completions kick the vCPU too: handle them first, then whatever the pager posted.
            let slot = slots[vcpu.id]!
            let pagerHook = vcpu.hooks.onInterrupt
            // Weak: the vCPU owns its hooks, and the slot holds the vCPU.
            vcpu.hooks.onInterrupt = { [weak slot] vcpu in
                slot?.onKick()
                return pagerHook?(vcpu)
            }
        }
        let region = pager.region
        // Every fault goes through the vCPU, whose slot decides (its state is the vCPU
        // thread's alone, so the router cannot ask whether the guest enabled async PF).
        pager.vcpuWantsFaults = { _ in true }
        // Ahead of the pager (which would fetch synchronously): async PF decides first.
        try dispatcher.register(.memoryFault, priority: DemandPager.handlerPriority + 1, owner: "async-pf") { [weak self] exit, vcpu in
            guard case let .memoryFault(fault) = exit, let at = fault.location, !fault.isHardwarePoison,
                  region.contains(at.gpa), let slot = self?.slots[vcpu.id] else { return .notMine }
            return slot.pageMissing(at.gpa)
        }
        try dispatcher.register(.wrmsr, priority: 100, owner: "async-pf") { [weak self] exit, vcpu in
            guard case var .wrmsr(access) = exit, let slot = self?.slots[vcpu.id] else { return .notMine }
            if let stop = slot.serviceOrStop() { return .stop(stop) }
            do {
                guard let result = try slot.state.writeMSR(access.index, value: access.data, env: slot.env) else { return .notMine }
                if case .generalProtection = result {
                    access.error = true
                    exit = .wrmsr(access)
                }
                try slot.env.flushInterrupt()
                return .handled
            } catch { return .fail("async-pf: vCPU \(vcpu.id): \(error)") }
        }
        try dispatcher.register(.rdmsr, priority: 100, owner: "async-pf") { [weak self] exit, vcpu in
            guard case var .rdmsr(access) = exit, let slot = self?.slots[vcpu.id],
                  let value = slot.state.readMSR(access.index) else { return .notMine }
            access.data = value
            exit = .rdmsr(access)
            return .handled
        }
        try dispatcher.register(.irqWindowOpen, priority: 100, owner: "async-pf") { [weak self] _, vcpu in
            guard let slot = self?.slots[vcpu.id] else { return .notMine }
            if let stop = slot.serviceOrStop() { return .stop(stop) }
            return .handled
        }
    }

    /// Gives vCPU `vcpuID` an NMI (any thread). It is held back while the guest has an
    /// async "not present" it has not read (its handler could fault and clobber CR2 and
    /// the reason) and delivered on the first exit after the guest cleared `flags`.
    public func requestNMI(vcpuID: UInt32) throws(VMMError) {
        guard let slot = slots[vcpuID] else { throw .invalidArgument("async PF: no vCPU \(vcpuID)") }
        slot.post(.nmi)
    }

    /// Gives vCPU `vcpuID` a real #PF at `address` (any thread), under the same rule:
    /// never while an async "not present" is unread, so CR2 is never clobbered.
    public func requestPageFault(vcpuID: UInt32, address: UInt64, errorCode: UInt32) throws(VMMError) {
        guard let slot = slots[vcpuID] else { throw .invalidArgument("async PF: no vCPU \(vcpuID)") }
        slot.post(.pageFault(address: address, errorCode: errorCode))
    }

    /// The vCPU's state machine: statistics and state, once the vCPU has stopped.
    public func state(of vcpuID: UInt32) -> AsyncPFVCPUState? { slots[vcpuID]?.state }

    /// Finishes queued fetches and stops the fetcher thread, then the pager. Idempotent.
    public func close() {
        fetcher.close()
        pager.close()
    }
}
