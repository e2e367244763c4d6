import CUFFD
import Glibc
import SystemPackage
import VMMKit

/// Demand paging of one guest RAM region from a `PageSource` through userfaultfd
/// (MISSING mode): every page not present when the pager starts is fetched on first
/// touch, installed atomically with UFFDIO_COPY, and fetched once however many vCPUs
/// race for it (EEXIST is success).
///
/// Faults reach it, each as one event, from every path the kernels give:
/// - an annotated `KVM_EXIT_MEMORY_FAULT` (fetch [gpa, gpa+size), retry; EHWPOISON is
///   left to the core, which stops the vCPU as `.hardwarePoison`);
/// - a ring-0 MMIO exit inside the region (SIGBUS mode on this host): install the page,
///   then complete the access exactly — a read gets the bytes now in the page, a write
///   lands in it;
/// - an un-annotated EFAULT or an internal error from an instruction fetch: the GPA
///   comes from translating RIP;
/// - blocking mode: the fault router reads the messages; a ring-3 vCPU is kicked and
///   resolves its own fault, a ring-0 one (which a kick cannot get out) is resolved by
///   the router.
/// A page the source cannot deliver after `retryLimit` tries stops the vCPU as `.stuck`.
public final class DemandPager: @unchecked Sendable {
    public enum Mode: Sendable, Equatable {
        /// The default: faulting threads wait in the kernel (`UFFD_FEATURE_THREAD_ID`)
        /// while the router thread and the vCPUs install pages. Works at any ring.
        case blocking
        /// `UFFD_FEATURE_SIGBUS`: no router; faults come back as exits. A ring-3 *data*
        /// access to a missing page then carries no address at all (KVM_RUN = EFAULT,
        /// exit reason 0), so this mode is not for guests that run ring-3 code: such a
        /// fault stops the vCPU with a diagnosis saying so.
        case sigbus
    }

    public struct Statistics: Sendable, Equatable {
        /// Pages read from the source and installed.
        public var pagesFetched = 0
        /// Of those, installed on a vCPU thread / on the router thread.
        public var installedByVCPU = 0
        public var installedByRouter = 0
        /// UFFDIO_COPY answered EEXIST (someone else installed the page first).
        public var alreadyPresent = 0
        /// userfaultfd messages read, and those about a page already present (folded).
        public var messages = 0
        public var foldedMessages = 0
        /// vCPUs kicked to resolve their own fault.
        public var kicks = 0
        public var sourceFailures = 0
        /// Of `pagesFetched`, installed by read-ahead before anyone touched them.
        public var readAhead = 0
        /// Faults from a kernel worker (KVM's own async page fault, in-kernel LAPIC)
        /// posted to the vCPU halted on them so its guest gets an async PF (`FaultRouter+KernelAsyncPF`).
        public var kernelWorkerFaults = 0
    }

    public let region: MemoryRegion
    public let source: any PageSource
    public let mode: Mode
    /// Tries per page before the vCPU is stopped as stuck.
    public var retryLimit = 3
    /// Blocking mode: whether the router kicks a faulting vCPU so it resolves its own
    /// fault (the vCPU-side path). Off: the router resolves every fault itself.
    public var vcpusResolveOwnFaults = true
    /// Blocking mode, a source that may be called from any thread: asked per fault
    /// whether the vCPU must see it anyway (async page faults enabled by its guest, whose
    /// "not present" needs the vCPU out of the kernel). nil = never. Set before the vCPUs
    /// start; called on the router thread.
    public var vcpuWantsFaults: (@Sendable (UInt32) -> Bool)?
    /// Read-ahead for sequential faults resolved by the fault router: when page p faults
    /// right after page p-1 did, the router also installs up to this many missing pages
    /// after p (after p itself, so the vCPU is not kept waiting). 0 = off (the default);
    /// at most `maxReadAheadPages`. Set before the vCPUs start.
    public var readAheadPages = 0 {
        didSet { readAheadPages = min(max(0, readAheadPages), Self.maxReadAheadPages) }
    }
    public static let maxReadAheadPages = 256

    let uffd: Userfaultfd
    let tracker: PageTracker
    private let counters = Lock(Statistics())
    let mailbox = Lock<[UInt32: UInt64]>([:])
    var router: FaultRouter?

    /// Registers region `name` of `memory` with a new userfaultfd. In blocking mode faults
    /// are served from here on, so the host may read or write the region before `attach`
    /// (in SIGBUS mode a host access to a missing page before it is installed raises SIGBUS). Pages already
    /// resident (code and tables the VMM wrote) stay; every other page comes from `source`.
    /// With `ranges`, only the region's pages that overlap them are demand-paged; the
    /// rest is left to the kernel (demand-zero for anonymous or memfd memory, no round
    /// trip to user space) — see `PluginHost.pageSourceRanges`.
    public init(memory: GuestMemory, region name: String, source: any PageSource, mode: Mode = .blocking,
                only ranges: [Range<UInt64>]? = nil) throws(VMMError) {
        guard let region = memory.regions.first(where: { $0.name == name }) else {
            throw .invalidArgument("demand paging: no memory region named '\(name)'")
        }
        guard region.backing != .guestMemfd else {
            throw .invalidArgument("demand paging: region \(region) is guest_memfd-backed; userfaultfd needs anonymous or memfd memory")
        }
        self.region = region
        self.source = source
        self.mode = mode
        self.uffd = try Userfaultfd(features: mode == .sigbus ? CUFFD_FEATURE_SIGBUS : CUFFD_FEATURE_THREAD_ID)
        let pages = Int(region.size / GuestMemory.pageSize)
        self.tracker = PageTracker(pages: pages)
        var resident = [UInt8](repeating: 0, count: pages)
        // A memfd without a single data page (fresh memory, as a restore builds) has
        // nothing resident: mincore would walk its page cache page by page (~25 ms a GiB
        // here, a lazy restore's largest cost).
        let fresh = region.backing == .memfd && lseek(region.fd, 0, 3 /* SEEK_DATA */) < 0 && errno == ENXIO
        if !fresh, mincore(region.hostAddress, Int(region.size), &resident) == 0 {
            for (i, r) in resident.enumerated() where r & 1 != 0 { tracker.markPresent(i) }
        }
        if let ranges {
            try registerOnly(ranges, pages: pages)
        } else {
            pagedPages = pages
            try uffd.register(region.hostAddress, length: Int(region.size))
        }
        Self.live.withLock { list in
            list.removeAll { $0.pager == nil }
            list.append(WeakPager(self))
        }
        // Blocking mode serves faults from the start: the host reading the region (a
        // snapshot, a loader, a device model) before `attach` would otherwise wait for
        // ever. `attach` replaces this router with one that knows the vCPUs.
        if mode == .blocking {
            let router = try FaultRouter(pager: self, vcpus: [])
            self.router = router
            try router.start()
        }
    }

    /// Pages outside `ranges` count as present (nobody fetches them); each run of paged
    /// pages is registered on its own.
    private func registerOnly(_ ranges: [Range<UInt64>], pages: Int) throws(VMMError) {
        var paged = [Bool](repeating: false, count: pages)
        let base = region.guestAddress, end = region.guestAddress + (region.size - 1)
        for r in ranges where !r.isEmpty && r.lowerBound <= end && r.upperBound > base {
            let first = Int((max(r.lowerBound, base) - base) / GuestMemory.pageSize)
            let last = Int((min(r.upperBound - 1, end) - base) / GuestMemory.pageSize)
            for i in first...last { paged[i] = true }
        }
        pagedPages = paged.lazy.filter { $0 }.count
        pagedMask = paged
        var i = 0
        while i < pages {
            guard paged[i] else { tracker.markPresent(i); i += 1; continue }
            var j = i
            while j < pages && paged[j] { j += 1 }
            try uffd.register(region.hostAddress + i * Int(GuestMemory.pageSize), length: (j - i) * Int(GuestMemory.pageSize))
            i = j
        }
    }

    /// How many pages of the region are demand-paged (all, unless `only` limited them).
    public private(set) var pagedPages = 0
    /// Which pages are demand-paged when `only` limited them (nil: all).
    private(set) var pagedMask: [Bool]?

    deinit {
        close()
        Self.live.withLock { $0.removeAll { $0.pager == nil } }
    }

    /// Every pager alive now, weakly: a snapshot of a region finds the pager serving it
    /// without being handed it (`pagers(serving:)`).
    private static let live = Lock<[WeakPager]>([])

    /// The live pagers demand-paging `region` (the same mapping: name and host address).
    /// A snapshot writer reads the pages they have not paged in yet from their sources:
    /// such a page is missing from memory but not zero.
    public static func pagers(serving region: MemoryRegion) -> [DemandPager] {
        live.withLock { list in
            list.compactMap(\.pager).filter { $0.region.name == region.name && $0.region.hostAddress == region.hostAddress }
        }
    }

    public var statistics: Statistics { counters.withLock { $0 } }
    /// Pages present in the region now (resident at start plus installed), after the
    /// installs in flight at the call (`presentPageAddresses` says why).
    public var presentPages: Int { tracker.presentCount }

    func count(_ body: (inout Statistics) -> Void) { counters.withLock { body(&$0) } }

    /// Stops the router. The userfaultfd stays registered until the pager goes away: a
    /// missing page touched from now on waits for good, so the plugins that filled them
    /// are told which are missing (`PluginHost.pagerStopped`).
    public func close() {
        router?.stop()
        router = nil
        (source as? PluginPageSource)?.plugins.pagerStopped { [weak self] gpa, length in self?.isPresent(gpa, length: length) ?? true }
    }

    func pageIndex(_ gpa: UInt64) -> Int? {
        region.contains(gpa) ? Int((gpa - region.guestAddress) / GuestMemory.pageSize) : nil
    }

    func gpa(ofPage page: Int) -> UInt64 { region.guestAddress + UInt64(page) * GuestMemory.pageSize }

    /// Whether every page of this region that [gpa, gpa + length) touches is present
    /// (bytes outside the region are not this pager's to say). Any length: the walk is
    /// clipped to the region first.
    func isPresent(_ gpa: UInt64, length: Int) -> Bool {
        guard length > 0, region.size > 0 else { return true }
        let start = max(gpa, region.guestAddress)
        let (end, over) = gpa.addingReportingOverflow(UInt64(length))
        let last = min(over ? UInt64.max : end - 1, region.guestAddress + (region.size - 1))
        guard start <= last else { return true }
        var page = Int((start - region.guestAddress) / GuestMemory.pageSize)
        let lastPage = Int((last - region.guestAddress) / GuestMemory.pageSize)
        while page <= lastPage {
            if !tracker.isPresent(page) { return false }
            page += 1
        }
        return true
    }

    enum Resolver { case vcpu, router }

    /// Makes page `page` present: fetched once by whoever claims it first; the others
    /// wait for it. Throws the source's last error after `retryLimit` failed tries.
    func ensurePresent(_ page: Int, by resolver: Resolver, for request: PageRequest) throws(VMMError) {
        guard case .mine = tracker.claim(page) else { return }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(GuestMemory.pageSize), alignment: 4096)
        defer { buffer.deallocate() }
        var lastError: VMMError?
        for _ in 0..<max(1, retryLimit) {
            do {
                try source.readPage(at: gpa(ofPage: page), into: buffer, for: request)
                lastError = nil
                break
            } catch {
                lastError = error
                count { $0.sourceFailures += 1 }
            }
        }
        if let lastError {
            tracker.abandon(page)
            throw lastError
        }
        let dst = region.hostAddress + page * Int(GuestMemory.pageSize)
        // Counted before the copy: it wakes the vCPU, which may finish and have its VMM
        // read the statistics before this thread runs again. Undone if the page was not ours.
        func counted(_ delta: Int) {
            count {
                $0.pagesFetched += delta
                if resolver == .vcpu { $0.installedByVCPU += delta } else { $0.installedByRouter += delta }
            }
        }
        counted(1)
        do {
            if try uffd.copy(to: dst, from: buffer.baseAddress!, length: buffer.count) == .alreadyPresent {
                counted(-1)
                count { $0.alreadyPresent += 1 }
            }
        } catch {
            counted(-1)
            tracker.abandon(page)
            throw error
        }
        tracker.markPresent(page)
    }

    /// Every page of [gpa, gpa+length) that lies in the region.
    func ensureRange(_ gpa: UInt64, length: UInt64, by resolver: Resolver, for request: PageRequest) throws(VMMError) {
        var page = gpa & ~(GuestMemory.pageSize - 1)
        while page < gpa + max(1, length) {
            if let index = pageIndex(page) { try ensurePresent(index, by: resolver, for: request) }
            page += GuestMemory.pageSize
        }
    }

    func stuck(_ vcpu: VCPU, gpa: UInt64, _ error: VMMError) -> StopReason {
        let rip = (try? vcpu.registers().rip).map { "0x" + String($0, radix: 16) } ?? "unknown"
        return .stuck("vCPU \(vcpu.id) at RIP \(rip): \(source.name) could not deliver guest-physical page 0x\(String(gpa & ~0xfff, radix: 16)) after \(max(1, retryLimit)) tries: \(error)")
    }
}

/// A weak reference to a pager, for the registry of live pagers.
final class WeakPager: @unchecked Sendable {
    weak var pager: DemandPager?
    init(_ pager: DemandPager) { self.pager = pager }
}
