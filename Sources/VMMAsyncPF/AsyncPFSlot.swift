import CKVM
import Glibc
import VMMKit
import VMMPaging

/// One vCPU's share of the async-PF controller: its state machine and KVM environment
/// (used on the vCPU thread only) and an inbox the fetcher posts completed pages to.
final class AsyncPFSlot: @unchecked Sendable {
    /// What other threads hand to the vCPU thread.
    enum Completion {
        case ready(token: UInt32)
        case failed(token: UInt32, gpa: UInt64, error: VMMError)
        /// The VMM wants the guest to take an NMI / a real #PF (deferred while an async
        /// "not present" is unread).
        case nmi
        case pageFault(address: UInt64, errorCode: UInt32)
    }

    let vcpu: VCPU
    let state: AsyncPFVCPUState
    let env: KVMAsyncPFEnvironment
    private let pager: DemandPager
    private let fetcher: AsyncPFFetcher
    private let inbox = AsyncPFMonitor<[Completion]>([])

    init(vcpu: VCPU, policy: AsyncPFPolicy, pager: DemandPager, fetcher: AsyncPFFetcher) {
        self.vcpu = vcpu
        self.pager = pager
        self.fetcher = fetcher
        state = AsyncPFVCPUState(vcpuID: vcpu.id, policy: policy)
        env = KVMAsyncPFEnvironment(vcpu: vcpu) { gpa throws(VMMError) in try pager.installPage(containing: gpa) }
    }

    // MARK: Any thread

    /// Posts a completion and kicks the vCPU out of the guest: `immediate_exit` covers a
    /// thread about to enter KVM_RUN, the signal one inside it. The vCPU thread picks
    /// it up in `onKick` (the core's interrupt hook).
    func post(_ completion: Completion) {
        inbox.update { $0.append(completion) }
        ckvm_set_immediate_exit(vcpu.unsafeRunPage, 1)
        vcpu.signalThread()
    }

    // MARK: vCPU thread

    /// After a kick: completed pages become "ready" events, the in-flight "not present"
    /// is acknowledged if the guest cleared `flags`, deferred events go out.
    func onKick() {
        if let stop = serviceOrStop() { vcpu.requestStop(stop) }
    }

    /// The same step, from any exit this controller handles. Returns a reason to stop.
    func serviceOrStop() -> StopReason? {
        do {
            let done = inbox.withLock { box in defer { box.removeAll() }; return box }
            if let stop = try apply(done) { return stop }
            if let conflict = try state.exit(env: env) { return .handlerFailed(conflict.message) }
            try env.flushInterrupt()
            return nil
        } catch {
            return .handlerFailed("async-pf: vCPU \(vcpu.id): \(error)")
        }
    }

    private func apply(_ completions: [Completion]) throws -> StopReason? {
        for completion in completions {
            switch completion {
            case let .ready(token):
                try state.pageReady(token: token, env: env)
            case let .failed(_, gpa, error):
                return .stuck("async-pf: vCPU \(vcpu.id): \(pager.source.name) could not deliver guest-physical page 0x\(String(gpa & ~0xfff, radix: 16)): \(error)")
            case .nmi:
                try state.injectNMI(env: env)
            case let .pageFault(address, errorCode):
                try state.injectPageFault(address: address, errorCode: errorCode, env: env)
            }
        }
        return nil
    }

    /// A ring-3 fault on a missing page, handed over by the demand pager's kick.
    func pageMissing(_ gpa: UInt64) -> ExitVerdict {
        if let stop = serviceOrStop() { return .stop(stop) }
        do {
            switch try state.pageMissing(gpa, env: env) {
            case let .notPresentInjected(token):
                let pager = pager
                fetcher.enqueue { [self] in
                    do throws(VMMError) {
                        try pager.installPage(containing: gpa)
                        post(.ready(token: token))
                    } catch {
                        post(.failed(token: token, gpa: gpa, error: error))
                    }
                }
            case .halted:
                if let stop = try waitWhileHalted() { return .stop(stop) }
            case .fetchedSynchronously:
                break
            }
            try env.flushInterrupt()
            return .handled
        } catch {
            return .fail("async-pf: vCPU \(vcpu.id): \(error)")
        }
    }

    /// The vCPU faulted on a page already being fetched for it: it stays out of the
    /// guest until that page's completion arrives (the fetch always completes or fails).
    private func waitWhileHalted() throws -> StopReason? {
        while env.isHalted {
            let done = inbox.wait(timeoutMicroseconds: 100_000) { box -> [Completion]? in
                guard !box.isEmpty else { return nil }
                defer { box.removeAll() }
                return box
            }
            if let done, let stop = try apply(done) { return stop }
        }
        return nil
    }
}
