import Glibc
import Synchronization
import Testing
@testable import VMMKit

@Suite("ConditionLock: a mutex and its condition, waits on the monotonic clock")
struct ConditionLockTests {
    @Test("a timed wait nobody wakes returns false at its deadline, not before (a condition on the wall clock took a monotonic deadline as decades past and returned at once); a past deadline returns false at once")
    func timedWaitSleepsUntilTheDeadline() {
        let lock = ConditionLock()
        var start = timespec(), end = timespec()
        clock_gettime(CLOCK_MONOTONIC, &start)
        let deadline = Deadline.after(seconds: 0.2)
        let woken = lock.withLock {
            var woken = true
            while woken { woken = lock.wait(until: deadline) } // a spurious wake-up waits again
            return woken
        }
        clock_gettime(CLOCK_MONOTONIC, &end)
        #expect(woken == false)
        #expect(Double(end.tv_sec - start.tv_sec) + Double(end.tv_nsec - start.tv_nsec) / 1e9 >= 0.2 - 1e-3)
        #expect(lock.withLock { lock.wait(until: Deadline.after(seconds: -1)) } == false)
    }

    @Test("threads waiting for a flag under the lock all see it once one thread sets it and broadcasts; signal wakes a waiter")
    func broadcastAndSignalWake() throws {
        let lock = ConditionLock()
        nonisolated(unsafe) var flag = 0 // guarded by lock
        let waiting = Atomic<Int>(0), done = Atomic<Int>(0)
        var threads: [pthread_t] = []
        for i in 0..<3 {
            threads.append(try HostThread.start("cond-\(i)") {
                lock.withLock {
                    waiting.add(1, ordering: .sequentiallyConsistent)
                    while flag == 0 { lock.wait() }
                }
                done.add(1, ordering: .sequentiallyConsistent)
            })
        }
        // Each waiter counts itself under the lock, so once all have, all wait or will
        // see the flag: no wake-up is lost.
        while waiting.load(ordering: .sequentiallyConsistent) < 3 { sched_yield() }
        lock.withLock { flag = 1; lock.broadcast() }
        for t in threads { pthread_join(t, nil) }
        #expect(done.load(ordering: .sequentiallyConsistent) == 3)

        let one = try HostThread.start("cond-signal") {
            lock.withLock { while flag != 2 { lock.wait() } }
        }
        lock.withLock { flag = 2; lock.signal() }
        pthread_join(one, nil)
        #expect(lock.withLock { flag } == 2)
    }
}
