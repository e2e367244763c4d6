import AsyncPFCore
import CVMMPlugin
import Glibc
import Synchronization
import VMMPluginKit

/// One vCPU's share of the plugin: its state machine and environment, used only on
/// that vCPU's thread (the host raises every record there), plus an inbox for what
/// other threads hand over (a PAGE_READY another plugin raised there, an NMI or real
/// #PF requested through vmm_async_pf_events_t), delivered after a kick. (Sendable:
/// only the inbox is touched off that thread.)
final class AsyncPFPluginSlot: @unchecked Sendable {
    let state: AsyncPFVCPUState
    let env: HostAsyncPFEnvironment
    private let host: PluginServices
    private let vcpuExt: UnsafePointer<vmm_host_vcpu_t>
    private let pagerExt: UnsafePointer<vmm_host_pager_t>
    private let vcpuID: UInt32
    enum Inbound: Sendable {
        case ready(gpa: UInt64)
        case nmi
        case pageFault(address: UInt64, errorCode: UInt32)
    }
    private let inbox = Mutex<[Inbound]>([])

    init(vcpuID: UInt32, policy: AsyncPFPolicy, host: PluginServices,
         vcpuExt: UnsafePointer<vmm_host_vcpu_t>, pagerExt: UnsafePointer<vmm_host_pager_t>) {
        self.vcpuID = vcpuID
        self.host = host
        self.vcpuExt = vcpuExt
        self.pagerExt = pagerExt
        state = AsyncPFVCPUState(vcpuID: vcpuID, policy: policy)
        env = HostAsyncPFEnvironment(vcpuID: vcpuID, host: host, vcpuExt: vcpuExt)
    }

    private var data: UnsafeMutableRawPointer? { host.raw.pointee.host_data }

    /// What every record of this vCPU starts with (the state machine's "every exit"):
    /// pages made ready elsewhere, the in-flight acknowledgement, deferred events, and
    /// a conflict diagnosis that stops the vCPU.
    private func service() throws {
        let items = inbox.withLock { q in defer { q.removeAll() }; return q }
        for (i, item) in items.enumerated() {
            do {
                switch item {
                case let .ready(gpa): _ = try ready(gpa)
                case .nmi: try state.injectNMI(env: env)
                case let .pageFault(address, errorCode): try state.injectPageFault(address: address, errorCode: errorCode, env: env)
                }
            } catch {
                // The items after the one that failed wait for the next record, not lost.
                inbox.withLock { $0.insert(contentsOf: items[(i + 1)...], at: 0) }
                throw error
            }
        }
        if let conflict = try state.exit(env: env) { throw VMMPluginError(conflict.message) }
        try env.flushInterrupt()
    }

    func msr(_ msr: inout vmm_exit_msr_t) throws -> PluginVerdict {
        if msr.is_write != 0 {
            guard let result = try state.writeMSR(msr.index, value: msr.data, env: env) else { return .notMine }
            if case let .generalProtection(why) = result {
                msr.error = 1
                host.log(.debug, "vCPU \(vcpuID): #GP: \(why)")
            }
        } else {
            guard let value = state.readMSR(msr.index) else { return .notMine }
            msr.data = value
        }
        try service()
        return .handled
    }

    func interruptWindow() throws -> PluginVerdict {
        let waiting = env.pendingVector != nil
        try service()
        return waiting ? .handled : .notMine
    }

    func event(kind: UInt32, gpa: UInt64) throws -> PluginVerdict {
        switch kind {
        case VMM_ASYNC_PF_PAGE_MISSING:
            return try missing(gpa)
        case VMM_ASYNC_PF_PAGE_READY:
            var bits: UInt32 = 0
            guard vcpuExt.pointee.pending_events(data, vcpuID, &bits) == 0 else {
                // Not on this vCPU's thread (raised by another plugin): hand it over.
                return post(.ready(gpa: gpa)) == 0 ? .handled : .notMine
            }
            guard try ready(gpa) else { return .notMine }
            try service()
            return .handled
        case VMM_ASYNC_PF_KICK:
            try service()
            return .handled
        default:
            return .notMine
        }
    }

    /// [any-thread] Hands `item` to the vCPU thread and kicks it there. 0 or -errno.
    func post(_ item: Inbound) -> Int32 {
        inbox.withLock { $0.append(item) }
        return vcpuExt.pointee.kick(data, vcpuID)
    }

    /// A ring-3 access to a missing page: "not present" and a background install, or
    /// NOT_MINE so that the host fetches the page before the vCPU resumes (delivery not
    /// allowed now, or the page is already on its way: the host's fetch waits for it).
    private func missing(_ gpa: UInt64) throws -> PluginVerdict {
        try service()
        env.wantsSynchronousFetch = false
        switch try state.pageMissing(gpa, env: env) {
        case .notPresentInjected:
            let rc = pagerExt.pointee.install_page_async(data, vcpuID, gpa)
            guard rc == 0 else {
                throw VMMPluginError("vCPU \(vcpuID): install_page_async(0x\(String(gpa, radix: 16))) failed with errno \(-rc)")
            }
            try env.flushInterrupt()
            return .handled
        case .halted, .fetchedSynchronously:
            try env.flushInterrupt()
            return .notMine
        }
    }

    /// The page at `gpa` is installed: "ready" for the token it was reported under.
    /// False if no token of this vCPU waits for it.
    private func ready(_ gpa: UInt64) throws -> Bool {
        let page = gpa & ~(AsyncPFABI.pageSize - 1)
        guard let token = state.outstanding.first(where: { $0.value == page })?.key else { return false }
        try state.pageReady(token: token, env: env)
        return true
    }
}
