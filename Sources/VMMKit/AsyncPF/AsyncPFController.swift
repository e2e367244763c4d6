import CKVM
import Glibc
import Synchronization

/// User-space async page faults for a whole VM: one `AsyncPFVCPUState` per vCPU, the
/// three MSRs routed to it through the dispatcher, faults from an `AsyncPFPageSource`
/// turned into "not present" / "ready" events, on the vCPU threads.
///
/// Usage: create the vCPUs and set them up (`setupLongMode` sets CPUID, which `attach`
/// then extends with the async-PF bits), `attach` before the vCPUs start, then `run`
/// (or `start` each vCPU) instead of `vm.run`: the loop is the core's, plus a step
/// before each entry that drains faults and completions handed over by other threads.
///
/// Delivery is CPL-3 only by default (see `AsyncPFPolicy.allowKernelModeDelivery`).
/// The hole that remains: NMIs, #MC and #DB raised inside the guest, and faults their
/// handlers take, never leave the guest, so the host cannot defer them; a guest that
/// gets one between the async #PF and its read of CR2 and `flags` loses both. The host
/// closes the part it can see (its own NMIs and real #PFs wait for `flags` to clear).
public final class AsyncPFController: @unchecked Sendable {
    public let policy: AsyncPFPolicy
    public let source: AsyncPFPageSource
    /// By vCPU id; filled by `attach`, read-only once the vCPUs run.
    private var slots: [UInt32: AsyncPFSlot] = [:]

    public init(source: AsyncPFPageSource, policy: AsyncPFPolicy = AsyncPFPolicy()) {
        self.source = source
        self.policy = policy
    }

    /// Routes the MSRs to user space, advertises the CPUID bits (withdraws them when
    /// `policy.featuresAdvertised` is false) and registers the MSR handlers.
    public func attach(to vm: VirtualMachine, dispatcher: ExitDispatcher) throws(VMMError) {
        try vm.prepareUserSpaceAsyncPF()
        for vcpu in vm.vcpus {
            try vcpu.advertiseAsyncPF(policy.featuresAdvertised)
            slots[vcpu.id] = AsyncPFSlot(vcpu: vcpu, policy: policy, source: source)
        }
        source.onFault = { [weak self] tid, gpa in self?.route(threadID: tid, gpa: gpa) ?? false }
        try dispatcher.register(.wrmsr, priority: 100, owner: "async-pf") { [unowned self] exit, vcpu in
            guard case var .wrmsr(access) = exit, let slot = slots[vcpu.id] else { return .notMine }
            do throws(VMMError) {
                guard let result = try slot.state.writeMSR(access.index, value: access.data, env: slot.env) else { return .notMine }
                if case .generalProtection = result {
                    access.error = true
                    exit = .wrmsr(access)
                }
                return .handled
            } catch { return .fail("async-pf: \(error)") }
        }
        try dispatcher.register(.rdmsr, priority: 100, owner: "async-pf") { [unowned self] exit, vcpu in
            guard case var .rdmsr(access) = exit, let slot = slots[vcpu.id],
                  let value = slot.state.readMSR(access.index) else { return .notMine }
            access.data = value
            exit = .rdmsr(access)
            return .handled
        }
        // The window exit itself needs nothing: the step before the next entry injects.
        try dispatcher.register(.irqWindowOpen, priority: 100, owner: "async-pf") { _, _ in .handled }
    }

    /// Starts the vCPU's thread running the async-PF-aware loop.
    public func start(_ vcpu: VCPU, _ dispatcher: ExitDispatcher) throws(VMMError) {
        guard let slot = slots[vcpu.id] else { throw .invalidArgument("async PF: vCPU \(vcpu.id) was created after attach") }
        _ = try vcpu.liveFD()
        dispatcher.freeze()
        try vcpu.control.start { slot.runLoop(dispatcher) }
    }

    /// Like `vm.run`: one thread per vCPU, then each vCPU's stop reason.
    public func run(_ vm: VirtualMachine, _ dispatcher: ExitDispatcher) throws(VMMError) -> [StopReason] {
        let all = vm.vcpus
        for vcpu in all { try start(vcpu, dispatcher) }
        return all.map { $0.join() }
    }

    /// The vCPU's state machine, for statistics and inspection once it has stopped.
    public func state(of vcpuID: UInt32) -> AsyncPFVCPUState? { slots[vcpuID]?.state }

    private func route(threadID: Int32, gpa: UInt64) -> Bool {
        guard let slot = slots.values.first(where: { $0.threadID.load(ordering: .acquiring) == threadID }) else { return false }
        slot.post { $0.faults.append(gpa) }
        return true
    }
}

/// One vCPU's share: its state machine and environment (vCPU thread only) and an
/// inbox other threads post faults and completions to, then kick.
final class AsyncPFSlot: @unchecked Sendable {
    struct Inbox {
        var faults: [UInt64] = []
        var ready: [UInt32] = []
        /// The vCPU thread while the loop runs, so a kick never signals a dead thread.
        var thread: pthread_t?
    }

    let vcpu: VCPU
    let state: AsyncPFVCPUState
    let env: KVMAsyncPFEnvironment
    let source: AsyncPFPageSource
    let inbox = AsyncPFMonitor(Inbox())
    let threadID = Atomic<Int32>(0)

    init(vcpu: VCPU, policy: AsyncPFPolicy, source: AsyncPFPageSource) {
        self.vcpu = vcpu
        self.source = source
        state = AsyncPFVCPUState(vcpuID: vcpu.id, policy: policy)
        env = KVMAsyncPFEnvironment(vcpu: vcpu) { gpa throws(VMMError) in try source.fetchNow(page: gpa) }
    }

    /// Any thread: adds to the inbox and kicks the vCPU out of KVM_RUN
    /// (`immediate_exit` for a thread about to enter, the signal for one inside).
    func post(_ change: (inout Inbox) -> Void) {
        inbox.update { box in
            change(&box)
            guard let thread = box.thread, vcpu.fd >= 0 else { return }
            vcpu.runPage.pointee.immediate_exit = 1
            pthread_kill(thread, VCPUControl.kickSignal)
        }
    }

    /// The core's run loop plus `beforeEntry`.
    func runLoop(_ dispatcher: ExitDispatcher) -> StopReason {
        threadID.store(ckvm_gettid(), ordering: .releasing)
        inbox.update { $0.thread = pthread_self() }
        defer { inbox.update { $0.thread = nil } }
        while true {
            if vcpu.control.pending.load(ordering: .sequentiallyConsistent),
               let reason = vcpu.control.checkpoint(clearKick: { vcpu.runPage.pointee.immediate_exit = 0 }) {
                return reason
            }
            do { if let stop = try beforeEntry() { return stop } } catch { return .error(error) }
            if env.isHalted { continue } // a stop request interrupted the halt
            var exit: VMExit
            do { exit = try vcpu.run() } catch { return .error(error) }
            if case .interrupted = exit {
                vcpu.runPage.pointee.immediate_exit = 0
                continue
            }
            switch dispatcher.dispatch(&exit, on: vcpu) {
            case .handled, .notMine:
                vcpu.complete(exit)
            case let .stop(reason):
                vcpu.complete(exit)
                return reason
            case let .fail(message):
                return .handlerFailed(message)
            }
        }
    }

    /// After every exit, before the next entry: acknowledge / deliver deferred events,
    /// then new faults, then completed pages; wait while halted; inject a waiting
    /// "ready" if the guest can take it.
    private func beforeEntry() throws(VMMError) -> StopReason? {
        let batch = inbox.withLock { box in
            defer { box.faults.removeAll(); box.ready.removeAll() }
            return (faults: box.faults, ready: box.ready)
        }
        if let conflict = try state.exit(env: env) { return .handlerFailed(conflict.message) }
        let tid = threadID.load(ordering: .relaxed)
        for gpa in batch.faults where source.claim(threadID: tid, page: gpa) {
            if case let .notPresentInjected(token) = try state.pageMissing(gpa, env: env) {
                source.fetchInBackground(page: gpa & ~(GuestMemory.pageSize - 1)) { [weak self] in
                    self?.post { $0.ready.append(token) }
                }
            }
        }
        for token in batch.ready { try state.pageReady(token: token, env: env) }
        while env.isHalted {
            let ready = inbox.wait(timeoutMicroseconds: 10_000) { box -> [UInt32]? in
                guard !box.ready.isEmpty else { return nil }
                defer { box.ready.removeAll() }
                return box.ready
            }
            if let ready {
                for token in ready { try state.pageReady(token: token, env: env) }
            } else if vcpu.control.pending.load(ordering: .sequentiallyConsistent) {
                return nil
            }
        }
        try env.flushInterrupt()
        return nil
    }
}
