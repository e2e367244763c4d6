import Glibc

/// Which pages of the paged region are present, and who is fetching which: the first
/// thread to claim a page fetches it, later ones wait for it instead of fetching twice
/// (two vCPUs on one page, the router and a vCPU racing). Different pages proceed in
/// parallel: the lock is never held while a page source works.
final class PageTracker: @unchecked Sendable {
    enum State: UInt8 { case absent, fetching, present }
    enum Claim { case present, mine }

    private var states: [State]
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var waitingSamplers = 0

    init(pages: Int) {
        states = Array(repeating: .absent, count: pages)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(cond, nil)
    }

    deinit {
        pthread_cond_destroy(cond)
        pthread_mutex_destroy(mutex)
        cond.deallocate()
        mutex.deallocate()
    }

    func isPresent(_ page: Int) -> Bool {
        pthread_mutex_lock(mutex); defer { pthread_mutex_unlock(mutex) }
        return states[page] == .present
    }

    func markPresent(_ page: Int) {
        pthread_mutex_lock(mutex)
        states[page] = .present
        pthread_cond_broadcast(cond)
        pthread_mutex_unlock(mutex)
    }

    /// `.mine`: the caller must fetch and then call `markPresent` or `abandon`.
    func claim(_ page: Int) -> Claim {
        pthread_mutex_lock(mutex); defer { pthread_mutex_unlock(mutex) }
        while true {
            switch states[page] {
            case .present: return .present
            case .absent: states[page] = .fetching; return .mine
            case .fetching: pthread_cond_wait(cond, mutex)
            }
        }
    }

    /// The fetch failed: someone may try again.
    func abandon(_ page: Int) {
        pthread_mutex_lock(mutex)
        states[page] = .absent
        pthread_cond_broadcast(cond)
        pthread_mutex_unlock(mutex)
    }

    /// Claims `page` if nobody has it (no waiting): true when the caller must fetch it
    /// and then call `markPresent` or `abandon`.
    func tryClaim(_ page: Int) -> Bool {
        pthread_mutex_lock(mutex); defer { pthread_mutex_unlock(mutex) }
        guard states[page] == .absent else { return false }
        states[page] = .fetching
        return true
    }

    /// `markPresent` for pages [first, first + count), one wake-up.
    func markPresent(_ first: Int, count: Int) {
        pthread_mutex_lock(mutex)
        for page in first..<(first + count) { states[page] = .present }
        pthread_cond_broadcast(cond)
        pthread_mutex_unlock(mutex)
    }

    /// `abandon` for pages [first, first + count).
    func abandon(_ first: Int, count: Int) {
        pthread_mutex_lock(mutex)
        for page in first..<(first + count) { states[page] = .absent }
        pthread_cond_broadcast(cond)
        pthread_mutex_unlock(mutex)
    }

    /// Indices of the pages present now (a restore's working set, sampled), after the
    /// installs in flight at the call have ended: see `waitForInstallsInFlight`.
    var presentIndices: [Int] {
        pthread_mutex_lock(mutex); defer { pthread_mutex_unlock(mutex) }
        waitForInstallsInFlight()
        return states.indices.filter { states[$0] == .present }
    }

    /// How many pages are present now, after the installs in flight at the call.
    var presentCount: Int {
        pthread_mutex_lock(mutex); defer { pthread_mutex_unlock(mutex) }
        waitForInstallsInFlight()
        return states.reduce(0) { $0 + ($1 == .present ? 1 : 0) }
    }

    /// Samplers waiting in `waitForInstallsInFlight`; tests wait for one.
    var samplersWaiting: Int {
        pthread_mutex_lock(mutex); defer { pthread_mutex_unlock(mutex) }
        return waitingSamplers
    }

    /// With the mutex held: waits until every page being fetched now is present or
    /// abandoned. An install wakes the faulting vCPU before its thread marks the page
    /// here, so without the wait a sample taken as the guest finishes can miss the page
    /// it touched last (CI34: 68 pages recorded, 69 fetched). Pages claimed later are
    /// not waited for. Not from a thread that holds a claim (a page source's callback).
    private func waitForInstallsInFlight() {
        let inFlight = states.indices.filter { states[$0] == .fetching }
        while inFlight.contains(where: { states[$0] == .fetching }) {
            waitingSamplers += 1
            pthread_cond_wait(cond, mutex)
            waitingSamplers -= 1
        }
    }
}
