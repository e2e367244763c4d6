import CKVM
import Glibc

/// Where the async-PF controller gets pages from. The demand-paging engine (issue 4's
/// memory_fault plugin) is meant to implement this; `AsyncPFSnapshotPager` is a
/// minimal stand-in.
public protocol AsyncPFPageSource: AnyObject, Sendable {
    /// Set by the controller before any vCPU runs: a fault on `gpa` by the thread with
    /// Linux thread id `threadID`. Returns false if no vCPU runs on that thread.
    var onFault: (@Sendable (_ threadID: Int32, _ gpa: UInt64) -> Bool)? { get set }
    /// The vCPU thread takes over the fault routed to it; false if the page was
    /// installed meanwhile (then there is nothing left to do but re-enter).
    func claim(threadID: Int32, page: UInt64) -> Bool
    /// Fetches and installs the page in the background, then calls `done`.
    func fetchInBackground(page: UInt64, then done: @escaping @Sendable () -> Void)
    /// Fetches and installs the page before returning.
    func fetchNow(page: UInt64) throws(VMMError)
}

/// A guest-RAM region served lazily from a snapshot, each page after a fixed latency,
/// through userfaultfd in blocking mode with thread ids.
///
/// MINIMAL STAND-IN, TO BE REPLACED BY ISSUE 4's DEMAND-PAGING ENGINE: one region, no
/// write tracking, no multi-region routing. What it does (measured on kvm_pvm): a vCPU
/// touching a missing page at CPL 3 blocks inside KVM_RUN; the router thread reads the
/// fault (with the vCPU thread's tid), hands it to `onFault`, which kicks that vCPU;
/// KVM_RUN returns EINTR with the faulting instruction not executed, and the vCPU
/// thread decides (async "not present" or a synchronous fetch). A fault nobody claims
/// within `unclaimedLimitMicroseconds` (a CPL-0 access: the kick cannot get it out of
/// the kernel) is installed by the router itself.
public final class AsyncPFSnapshotPager: AsyncPFPageSource, @unchecked Sendable {
    public let guestAddress: UInt64
    public let size: UInt64
    public let latencyMicroseconds: UInt32
    public let unclaimedLimitMicroseconds: UInt64 = 5_000
    public var onFault: (@Sendable (Int32, UInt64) -> Bool)?
    private let hostAddress: UnsafeMutableRawPointer
    private let snapshot: UnsafeMutableRawPointer
    private let uffd: Int32
    /// A pipe whose read end wakes the router's poll() at close().
    private let stopFD: Int32
    private let stopWriteFD: Int32
    private let lock = AsyncPFMonitor(State())
    private var threads: [pthread_t] = []

    private struct State {
        var installed = Set<UInt64>()
        /// Faults handed to a vCPU and not yet claimed, with when they were routed.
        var routed: [RouteKey: UInt64] = [:]
        var queue: [(due: UInt64, page: UInt64, done: @Sendable () -> Void)] = []
        var stopping = false
    }

    private struct RouteKey: Hashable { let tid: Int32; let page: UInt64 }

    /// Serves `region` (which must not have been touched yet) from `snapshot`, whose
    /// size must equal the region's.
    public init(region: MemoryRegion, snapshot bytes: [UInt8], latencyMicroseconds: UInt32) throws(VMMError) {
        guard UInt64(bytes.count) == region.size, region.size % GuestMemory.pageSize == 0 else {
            throw .invalidArgument("snapshot pager: snapshot is \(bytes.count) bytes, region '\(region.name)' is \(region.size)")
        }
        let fd = ckvm_userfaultfd(O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw .systemCallFailed(name: "userfaultfd", errno: .current) }
        var api = uffdio_api(api: CKVM_UFFD_API, features: UInt64(UFFD_FEATURE_THREAD_ID), ioctls: 0)
        var register = uffdio_register(range: uffdio_range(start: UInt64(UInt(bitPattern: region.hostAddress)), len: region.size),
                                       mode: UInt64(UFFDIO_REGISTER_MODE_MISSING), ioctls: 0)
        do throws(VMMError) {
            _ = try ioctl(fd, CKVM_UFFDIO_API, "UFFDIO_API (THREAD_ID)", &api)
            _ = try ioctl(fd, CKVM_UFFDIO_REGISTER, "UFFDIO_REGISTER (MISSING)", &register)
        } catch {
            Glibc.close(fd)
            throw error
        }
        var pipeFDs: [Int32] = [-1, -1]
        guard pipe(&pipeFDs) == 0 else { Glibc.close(fd); throw .systemCallFailed(name: "pipe", errno: .current) }
        for p in pipeFDs { _ = fcntl(p, F_SETFD, FD_CLOEXEC) }
        uffd = fd
        stopFD = pipeFDs[0]
        stopWriteFD = pipeFDs[1]
        guestAddress = region.guestAddress
        size = region.size
        hostAddress = region.hostAddress
        self.latencyMicroseconds = latencyMicroseconds
        snapshot = .allocate(byteCount: bytes.count, alignment: Int(GuestMemory.pageSize))
        snapshot.copyMemory(from: bytes, byteCount: bytes.count)
        threads.append(try startAsyncPFThread { [unowned self] in routeFaults() })
        threads.append(try startAsyncPFThread { [unowned self] in runFetcher() })
    }

    deinit {
        close()
        snapshot.deallocate()
    }

    /// Stops both threads and closes the userfaultfd. Idempotent.
    public func close() {
        var first = false
        lock.update { s in first = !s.stopping; s.stopping = true }
        guard first else { return }
        var one: UInt64 = 1
        _ = write(stopWriteFD, &one, 8)
        for t in threads { pthread_join(t, nil) }
        Glibc.close(stopFD)
        Glibc.close(stopWriteFD)
        Glibc.close(uffd)
    }

    public var installedPages: Int { lock.withLock { $0.installed.count } }

    public func claim(threadID: Int32, page: UInt64) -> Bool {
        lock.withLock { s in
            s.routed[RouteKey(tid: threadID, page: page)] = nil
            return !s.installed.contains(page)
        }
    }

    public func fetchInBackground(page: UInt64, then done: @escaping @Sendable () -> Void) {
        let due = monotonicMicroseconds() + UInt64(latencyMicroseconds)
        lock.update { $0.queue.append((due, page, done)) }
    }

    public func fetchNow(page: UInt64) throws(VMMError) {
        usleep(latencyMicroseconds)
        try install(page)
    }

    /// UFFDIO_COPY from the snapshot; EEXIST (someone else won) is success.
    private func install(_ page: UInt64) throws(VMMError) {
        guard page >= guestAddress, page - guestAddress < size else {
            throw .unmappedGuestAddress(gpa: page, length: Int(GuestMemory.pageSize))
        }
        let offset = Int(page - guestAddress)
        var copy = uffdio_copy(dst: UInt64(UInt(bitPattern: hostAddress + offset)), src: UInt64(UInt(bitPattern: snapshot + offset)),
                               len: GuestMemory.pageSize, mode: 0, copy: 0)
        if ckvm_ioctl(uffd, CKVM_UFFDIO_COPY, &copy) != 0, ckvm_errno() != EEXIST {
            throw .ioctlFailed(name: "UFFDIO_COPY", errno: .current)
        }
        lock.withLock { _ = $0.installed.insert(page) }
    }

    private func routeFaults() {
        var fds = [pollfd(fd: uffd, events: Int16(POLLIN), revents: 0), pollfd(fd: stopFD, events: Int16(POLLIN), revents: 0)]
        var message = uffd_msg()
        while true {
            _ = poll(&fds, 2, 1)
            if fds[1].revents != 0 { return }
            while read(uffd, &message, MemoryLayout<uffd_msg>.size) == MemoryLayout<uffd_msg>.size {
                guard message.event == UInt8(UFFD_EVENT_PAGEFAULT) else { continue }
                let fault = message.arg.pagefault
                let page = guestAddress + (fault.address - UInt64(UInt(bitPattern: hostAddress))) & ~(GuestMemory.pageSize - 1)
                route(tid: Int32(bitPattern: fault.feat.ptid), page: page)
            }
            installUnclaimed()
        }
    }

    private func route(tid: Int32, page: UInt64) {
        let key = RouteKey(tid: tid, page: page)
        let fresh = lock.withLock { s -> Bool in
            guard !s.installed.contains(page), s.routed[key] == nil else { return false }
            s.routed[key] = monotonicMicroseconds()
            return true
        }
        guard fresh else { return }
        if onFault?(tid, page) != true {
            lock.withLock { _ = $0.routed.removeValue(forKey: key) }
            try? install(page)
        }
    }

    private func installUnclaimed() {
        let now = monotonicMicroseconds()
        let stale = lock.withLock { s -> [RouteKey] in
            let keys = s.routed.filter { now - $0.value > unclaimedLimitMicroseconds }.map(\.key)
            for k in keys { s.routed[k] = nil }
            return keys
        }
        for key in stale { try? fetchNow(page: key.page) }
    }

    private enum FetcherStep {
        case stop
        case fetch(due: UInt64, page: UInt64, done: @Sendable () -> Void)
    }

    private func runFetcher() {
        while true {
            let step = lock.wait(timeoutMicroseconds: 100_000) { s -> FetcherStep? in
                if s.stopping { return .stop }
                guard !s.queue.isEmpty else { return nil }
                let item = s.queue.removeFirst()
                return .fetch(due: item.due, page: item.page, done: item.done)
            }
            switch step {
            case .none: continue
            case .stop: return
            case let .fetch(due, page, done):
                let now = monotonicMicroseconds()
                if due > now { usleep(UInt32(due - now)) }
                try? install(page)
                done()
            }
        }
    }
}
