import Glibc
import Testing
import VMMKit
@testable import VMMPaging

/// The pager's page states as a working-set sample sees them. An install wakes the
/// faulting vCPU (UFFDIO_COPY) before the installing thread marks the page present, so
/// a sample taken as the guest finishes could miss the page it touched last: CI34
/// recorded 68 pages of a restore that fetched 69.
@Suite("Demand pager: page states sampled while an install is in flight")
struct PageTrackerTests {
    final class Sampler: @unchecked Sendable {
        private let lock = Lock<[Int]?>(nil)
        private var thread = pthread_t()

        init(_ tracker: PageTracker) {
            thread = spawn { [self] in
                let sample = tracker.presentIndices
                lock.withLock { $0 = sample }
            }
        }

        var result: [Int]? { lock.withLock { $0 } }

        func join() -> [Int]? {
            pthread_join(thread, nil)
            return result
        }
    }

    @Test("a sample waits for the installs in flight at its call and includes their pages; other pages are not waited for")
    func sampleWaitsForInFlight() {
        let tracker = PageTracker(pages: 8)
        tracker.markPresent(1)
        #expect(tracker.claim(3) == .mine)
        let sampler = Sampler(tracker)
        // The condition the sample needs: it has seen page 3 in flight and waits (the
        // old sample returned at once, without page 3).
        while tracker.samplersWaiting == 0 && sampler.result == nil { sched_yield() }
        #expect(sampler.result == nil, "the sample returned while page 3 was being installed")
        #expect(tracker.tryClaim(5)) // claimed after the call: not waited for
        tracker.markPresent(3)
        #expect(sampler.join() == [1, 3])
        tracker.abandon(5)
        // An install that fails ends the wait too, without its page.
        #expect(tracker.claim(6) == .mine)
        let second = Sampler(tracker)
        while tracker.samplersWaiting == 0 && second.result == nil { sched_yield() }
        tracker.abandon(6)
        #expect(second.join() == [1, 3])
    }
}
