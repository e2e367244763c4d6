import AsyncPFCore
import Glibc
import Synchronization
import VMMKit
import VMMPaging

/// Async page faults through a loaded plugin (Plugins/AsyncPF) instead of the
/// in-process `AsyncPFController`: the host side of ABI 1.1's pager/1 extension and of
/// PAGE_MISSING.
///
/// - Faults: the demand pager's fault router kicks a ring-3 vCPU blocked on a missing
///   page; its memory-fault event reaches this handler first (ahead of the pager), which
///   raises PAGE_MISSING to the plugins' async-PF handlers on the vCPU thread. HANDLED:
///   the guest was told "not present" and resumes without the page; NOT_MINE: the pager
///   fetches it synchronously (waiting for a background fetch of the same page).
/// - Pages: install_page and install_page_async (one fetcher thread, in request
///   order); a page installed in the background becomes PAGE_READY on its vCPU's
///   thread (the host kicks it).
///
/// Usage: load the plugins, `pager.attach(...)`, then `attach(to:)` here, run, `close()`.
public final class PluginAsyncPF: PluginPageService, @unchecked Sendable {
    public let pager: DemandPager
    private let fetcher: AsyncPFFetcher
    /// vCPUs whose guest has async PF enabled (router thread reads, vCPU threads write).
    private let guestEnabled = EnabledVCPUs()
    private let counts = Counts()

    /// Ring-3 faults the plugins answered "not present" (async PFs the guest received),
    /// and pages then installed in the background (PAGE_READY posted). For metrics.
    public var asyncFaults: UInt64 { counts.notPresent.load(ordering: .relaxed) }
    public var backgroundInstalls: UInt64 { counts.ready.load(ordering: .relaxed) }

    private final class Counts: Sendable {
        let notPresent = Atomic<UInt64>(0)
        let ready = Atomic<UInt64>(0)
    }

    public init(pager: DemandPager) throws(VMMError) {
        guard pager.mode == .blocking else {
            throw .invalidArgument("async PF needs the demand pager in blocking mode: in SIGBUS mode a ring-3 fault carries no address")
        }
        self.pager = pager
        self.fetcher = try AsyncPFFetcher()
    }

    deinit { close() }

    /// Serves pager/1 for `plugins` and routes the pager's faults to their async-PF
    /// handlers. Before the vCPUs start.
    public func attach(to plugins: PluginHost) throws(VMMError) {
        plugins.pageService = self
        let region = pager.region
        // A vCPU whose guest enabled async PF (MSR_KVM_ASYNC_PF_EN bit 0, seen on its way
        // to the plugin) must see its faults; the others' the router may resolve alone.
        let enabled = guestEnabled
        try plugins.dispatcher.register(.wrmsr, priority: DemandPager.handlerPriority, owner: "async-pf plugins (enable watch)") { exit, vcpu in
            if case let .wrmsr(access) = exit, access.index == AsyncPFABI.msrEnable {
                enabled.set.withLock { set in
                    if access.data & AsyncPFABI.enabled != 0 { set.insert(vcpu.id) } else { set.remove(vcpu.id) }
                }
            }
            return .notMine
        }
        pager.vcpuWantsFaults = { id in enabled.set.withLock { $0.contains(id) } }
        let counts = counts
        try plugins.dispatcher.register(.memoryFault, priority: DemandPager.handlerPriority + 1, owner: "async-pf plugins") {
            [weak plugins] exit, vcpu in
            guard case let .memoryFault(fault) = exit, let at = fault.location, !fault.isHardwarePoison,
                  region.contains(at.gpa), let plugins, plugins.handlesAsyncPF else { return .notMine }
            let verdict = plugins.raisePageMissing(gpa: at.gpa, access: 0, vcpu: vcpu)
            if case .handled = verdict { counts.notPresent.add(1, ordering: .relaxed) }
            return verdict
        }
    }

    /// For a restored VM: guests enabled async PF before the snapshot, and their MSR
    /// write lives in the AsyncPF plugin's restored state, not in the watch. Treats `ids`
    /// as enabled (their faults reach the plugins) until they write the MSR again; a
    /// vCPU whose guest had not enabled it gets a synchronous fetch from the plugin.
    public func assumeGuestsEnabled(_ ids: [UInt32]) {
        guestEnabled.set.withLock { $0.formUnion(ids) }
    }

    public func pages(_ gpa: UInt64) -> Bool { pager.region.contains(gpa) }

    public func installPage(containing gpa: UInt64) throws(VMMError) {
        try pager.installPage(containing: gpa)
    }

    public func installPageInBackground(containing gpa: UInt64, vcpuID: UInt32, host: PluginHost) -> Bool {
        let pager = pager
        let counts = counts
        return fetcher.enqueue { [weak host] in
            do throws(VMMError) {
                try pager.installPage(containing: gpa, for: PageRequest(vcpu: vcpuID, access: []))
                counts.ready.add(1, ordering: .relaxed)
                host?.postPageReady(gpa: gpa, vcpuID: vcpuID)
            } catch {
                host?.postFailure("async-pf: vCPU \(vcpuID): \(pager.source.name) could not deliver guest-physical page 0x\(String(gpa & ~0xfff, radix: 16)): \(error)", vcpuID: vcpuID)
            }
        }
    }

    /// Finishes queued fetches and stops the fetcher thread. Idempotent.
    public func close() { fetcher.close() }
}

/// The vCPUs whose guest enabled async page faults.
final class EnabledVCPUs: Sendable {
    let set = Lock<Set<UInt32>>([])
}
