import Glibc
import VMMKit

/// Which pages of the paged region are present, and who is fetching which: the first
/// thread to claim a page fetches it, later ones wait for it instead of fetching twice
/// (two vCPUs on one page, the router and a vCPU racing). Different pages proceed in
/// parallel: the lock is never held while a page source works.
final class PageTracker: @unchecked Sendable {
    enum State: UInt8 { case absent, fetching, present }
    enum Claim { case present, mine }

    private var states: [State]
    private let lock = ConditionLock()
    private var waitingSamplers = 0

    init(pages: Int) {
        states = Array(repeating: .absent, count: pages)
    }

    func isPresent(_ page: Int) -> Bool {
        lock.lock(); defer { lock.unlock() }
        return states[page] == .present
    }

    func markPresent(_ page: Int) {
        lock.lock()
        states[page] = .present
        lock.broadcast()
        lock.unlock()
    }

    /// `.mine`: the caller must fetch and then call `markPresent` or `abandon`.
    func claim(_ page: Int) -> Claim {
        lock.lock(); defer { lock.unlock() }
        while true {
            switch states[page] {
            case .present: return .present
            case .absent: states[page] = .fetching; return .mine
            case .fetching: lock.wait()
            }
        }
    }

    /// The fetch failed: someone may try again.
    func abandon(_ page: Int) {
        lock.lock()
        states[page] = .absent
        lock.broadcast()
        lock.unlock()
    }

    /// Claims `page` if nobody has it (no waiting): true when the caller must fetch it
    /// and then call `markPresent` or `abandon`.
    func tryClaim(_ page: Int) -> Bool {
        lock.lock(); defer { lock.unlock() }
        guard states[page] == .absent else { return false }
        states[page] = .fetching
        return true
    }

    /// `markPresent` for pages [first, first + count), one wake-up.
    func markPresent(_ first: Int, count: Int) {
        lock.lock()
        for page in first..<(first + count) { states[page] = .present }
        lock.broadcast()
        lock.unlock()
    }

    /// `abandon` for pages [first, first + count).
    func abandon(_ first: Int, count: Int) {
        lock.lock()
        for page in first..<(first + count) { states[page] = .absent }
        lock.broadcast()
        lock.unlock()
    }

    /// Indices of the pages present now (a restore's working set, sampled), after the
    /// installs in flight at the call have ended: see `waitForInstallsInFlight`.
    var presentIndices: [Int] {
        lock.lock(); defer { lock.unlock() }
        waitForInstallsInFlight()
        return states.indices.filter { states[$0] == .present }
    }

    /// How many pages are present now, after the installs in flight at the call.
    var presentCount: Int {
        lock.lock(); defer { lock.unlock() }
        waitForInstallsInFlight()
        return states.reduce(0) { $0 + ($1 == .present ? 1 : 0) }
    }

    /// Samplers waiting in `waitForInstallsInFlight`; tests wait for one.
    var samplersWaiting: Int {
        lock.lock(); defer { lock.unlock() }
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
            lock.wait()
            waitingSamplers -= 1
        }
    }
}
