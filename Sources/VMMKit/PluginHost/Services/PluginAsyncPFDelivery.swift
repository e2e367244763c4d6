import CKVM
import CVMMPlugin
import Glibc

/// What a demand pager offers plugins through the pager/1 extension. VMMPaging's
/// pager implements it (VMMKit does not know userfaultfd).
public protocol PluginPageService: AnyObject, Sendable {
    /// Whether `gpa` lies in the demand-paged region.
    func pages(_ gpa: UInt64) -> Bool
    /// Makes the page containing `gpa` present before returning (any thread).
    func installPage(containing gpa: UInt64) throws(VMMError)
    /// Makes it present in the background, then calls `host.postPageReady` (or
    /// `postFailure`) for `vcpuID`. Returns at once: false when it could not take the
    /// request (too many wait, or it is closing), and nothing will be posted.
    func installPageInBackground(containing gpa: UInt64, vcpuID: UInt32, host: PluginHost) -> Bool
}

/// Records waiting for one vCPU's thread: a coalesced kick, pages installed in the
/// background, a failure that stops the vCPU.
struct PostedAsyncPF {
    var kick = false
    var ready: [UInt64] = []
    var failure: String?
}

/// Async page fault records the host raises itself (ABI 1.1), always on the vCPU's
/// own thread, with the vCPU "in an exit" so get_reg, inject_exception and the vcpu/1
/// services work on it: PAGE_MISSING from the demand pager's fault path, PAGE_READY
/// after install_page_async, KICK after vcpu/1 kick.
extension PluginHost {
    /// Whether a plugin handles VMM_EXIT_ASYNC_PF (else the pager need not ask).
    public var handlesAsyncPF: Bool { !asyncPFHandlers.isEmpty }

    /// [vcpu-thread] PAGE_MISSING for `vcpu`, which stopped on the missing page at
    /// `gpa` at a clean boundary. `.handled`: a plugin told the guest; `.notMine`: the
    /// caller fetches the page synchronously; `.fail`: a plugin failed.
    public func raisePageMissing(gpa: UInt64, access: UInt32, vcpu: VCPU) -> ExitVerdict {
        let (verdict, message) = deliver(VMM_ASYNC_PF_PAGE_MISSING, gpa: gpa & ~0xfff, size: 4096, access: access,
                                         vcpu: vcpu, everyHandler: false)
        switch verdict {
        case VMM_HANDLED.rawValue: return .handled
        case VMM_NOT_MINE.rawValue: return .notMine
        default: return .fail(message ?? "async-PF handler failed")
        }
    }

    /// [any-thread] The page at `gpa` asked for with install_page_async is present.
    public func postPageReady(gpa: UInt64, vcpuID: UInt32) {
        post(to: vcpuID) { $0.ready.append(gpa & ~0xfff) }
    }

    /// [any-thread] A background install failed: `vcpuID` stops with `message`.
    public func postFailure(_ message: String, vcpuID: UInt32) {
        post(to: vcpuID) { $0.failure = $0.failure ?? message }
    }

    /// [any-thread] vcpu/1 kick.
    func postKick(vcpuID: UInt32) -> Bool { post(to: vcpuID) { $0.kick = true } }

    @discardableResult
    private func post(to vcpuID: UInt32, _ body: (inout PostedAsyncPF) -> Void) -> Bool {
        guard let vcpu = vm.vcpus.first(where: { $0.id == vcpuID }) else { return false }
        posted.withLock { all in
            if let i = all.firstIndex(where: { $0.vcpuID == vcpuID }) { return body(&all[i].work) }
            var work = PostedAsyncPF()
            body(&work)
            all.append((vcpuID, work))
        }
        // immediate_exit covers a thread about to enter KVM_RUN, the signal one inside it.
        ckvm_set_immediate_exit(vcpu.unsafeRunPage, 1)
        vcpu.signalThread()
        return true
    }

    /// Chains the delivery of posted records in front of each vCPU's interrupt hook
    /// (a demand pager attached later chains its own behind it). Load thread.
    func installDeliveryHooks() {
        for vcpu in vm.vcpus where !hookedVCPUs.contains(vcpu.id) {
            hookedVCPUs.append(vcpu.id)
            let later = vcpu.hooks.onInterrupt
            vcpu.hooks.onInterrupt = { [weak self] vcpu in
                self?.deliverPosted(vcpu)
                return later?(vcpu)
            }
        }
    }

    /// [vcpu-thread] After a kick: everything posted for `vcpu`, in order.
    func deliverPosted(_ vcpu: VCPU) {
        guard let work = posted.withLock({ all in all.firstIndex { $0.vcpuID == vcpu.id }.map { all.remove(at: $0).work } }) else { return }
        if let failure = work.failure {
            vcpu.requestStop(.stuck(failure))
            return
        }
        for page in work.ready {
            let (v, message) = deliver(VMM_ASYNC_PF_PAGE_READY, gpa: page, size: 4096, access: 0, vcpu: vcpu, everyHandler: false)
            if v == VMM_FAIL.rawValue { return vcpu.requestStop(.handlerFailed(message ?? "async-PF handler failed")) }
        }
        if work.kick {
            let (v, message) = deliver(VMM_ASYNC_PF_KICK, gpa: 0, size: 0, access: 0, vcpu: vcpu, everyHandler: true)
            if v == VMM_FAIL.rawValue { vcpu.requestStop(.handlerFailed(message ?? "async-PF handler failed")) }
        }
    }

    /// Runs the async-PF handlers on a private record with `vcpu` in an exit on this
    /// thread. `everyHandler`: all run (KICK); else the first answer other than
    /// NOT_MINE wins. A FAIL always ends the walk; its message names the handler.
    private func deliver(_ kind: UInt32, gpa: UInt64, size: UInt64, access: UInt32, vcpu: VCPU,
                         everyHandler: Bool) -> (vmm_verdict_t, String?) {
        let state = PluginThreadState.current
        let outer = state.vcpu
        if outer != nil { _ = state.end() } // nested in a plugin exit: write its registers back first
        defer { state.vcpu = outer; state.regsLoaded = false; state.sregsLoaded = false }
        var record = vmm_exit_t()
        record.struct_size = UInt32(MemoryLayout<vmm_exit_t>.size)
        record.vcpu_id = vcpu.id
        record.exit_class = VMM_EXIT_ASYNC_PF.rawValue
        record.async_pf = vmm_exit_async_pf_t(gpa: gpa, size: size, kind: kind, access: access)
        var result = VMM_NOT_MINE.rawValue
        for h in asyncPFHandlers where kind == VMM_ASYNC_PF_KICK || h.covers(gpa) {
            record.message = nil
            state.vcpu = vcpu
            state.regsLoaded = false
            state.sregsLoaded = false
            let v = state.call(h.handle, h.user, &record, h.tag)
            if let error = state.end() { return (VMM_FAIL.rawValue, "\(h.owner): registers could not be written back: \(error)") }
            if v == VMM_NOT_MINE.rawValue { continue }
            if v != VMM_HANDLED.rawValue {
                let text = PluginText.message(record.message)
                return (VMM_FAIL.rawValue, "\(h.owner): \(v == VMM_FAIL.rawValue ? text : "returned an unknown verdict \(v)")")
            }
            result = v
            if !everyHandler { break }
        }
        return (result, nil)
    }
}
