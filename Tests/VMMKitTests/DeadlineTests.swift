import Glibc
import Testing
@testable import VMMKit

@Suite("Deadlines for condition waits")
struct DeadlineTests {
    @Test("any Double gives a valid time from now: NaN and negatives now, infinity and 1e300 clamped to 1e9 s, fractions carried")
    func hostileSeconds() {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        for seconds in [Double.nan, -1, -.infinity, 0, 0.999_999_999, 1.5, 1e9, 1e300, .infinity] {
            let d = Deadline.after(seconds: seconds)
            #expect((0..<1_000_000_000).contains(d.tv_nsec), "\(seconds)")
            #expect(d.tv_sec >= now.tv_sec && d.tv_sec <= now.tv_sec + 1_000_000_001, "\(seconds)")
        }
        // Taken between two clock reads: 1.5 s after the first at least, after the second at most.
        var before = timespec(), after = timespec()
        clock_gettime(CLOCK_MONOTONIC, &before)
        let later = Deadline.after(seconds: 1.5)
        clock_gettime(CLOCK_MONOTONIC, &after)
        func since(_ t: timespec) -> Double { Double(later.tv_sec - t.tv_sec) + Double(later.tv_nsec - t.tv_nsec) / 1e9 }
        #expect(since(before) >= 1.5 - 1e-9 && since(after) <= 1.5 + 1e-9)
    }

    @Test("a condition from initCondition times its waits on the deadlines' clock: it sleeps until the deadline (on the wall clock's, a monotonic deadline is decades past and the wait returned at once)")
    func conditionWaitsTheWholeTime() {
        var mutex = pthread_mutex_t(), cond = pthread_cond_t()
        pthread_mutex_init(&mutex, nil)
        Deadline.initCondition(&cond)
        defer { pthread_cond_destroy(&cond); pthread_mutex_destroy(&mutex) }
        var start = timespec(), end = timespec()
        clock_gettime(CLOCK_MONOTONIC, &start)
        var deadline = Deadline.after(seconds: 0.2)
        pthread_mutex_lock(&mutex)
        var rc: Int32 = 0
        repeat { rc = pthread_cond_timedwait(&cond, &mutex, &deadline) } while rc == 0 // a spurious wakeup
        pthread_mutex_unlock(&mutex)
        clock_gettime(CLOCK_MONOTONIC, &end)
        #expect(rc == ETIMEDOUT)
        #expect(Double(end.tv_sec - start.tv_sec) + Double(end.tv_nsec - start.tv_nsec) / 1e9 >= 0.2 - 1e-3)
    }
}
