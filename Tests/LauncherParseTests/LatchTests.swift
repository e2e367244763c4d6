import Glibc
@testable import Launcher
import Synchronization
import Testing
import VMMKit

/// `Latch`, the set-once flag behind the API's start gate, `--max-seconds`' cancellation
/// and the stuck-run exit.
@Suite("the launcher's set-once latch")
struct LatchTests {
    @Test("a closed latch's timed wait says it did not open (a NaN or negative time waits not at all); once opened every wait returns true, for good")
    func timedWait() {
        let latch = Latch()
        #expect(latch.wait(seconds: 0) == false)
        #expect(latch.wait(seconds: -5) == false)
        #expect(latch.wait(seconds: .nan) == false)
        #expect(latch.wait(seconds: 0.001) == false)
        latch.open()
        #expect(latch.wait(seconds: 0) == true)
        latch.open()
        latch.wait()
        #expect(latch.wait(seconds: 1e12) == true)
    }

    @Test("threads blocked in wait() and wait(seconds:) are all released by one open() on another thread")
    func releasesWaiters() throws {
        let latch = Latch()
        let started = Latch()
        let released = Atomic<Int>(0)
        var threads: [pthread_t] = []
        for i in 0..<4 {
            threads.append(try HostThread.start("latch-\(i)") {
                if i == 0 { started.open() }
                if i % 2 == 0 {
                    latch.wait()
                    released.add(1, ordering: .sequentiallyConsistent)
                } else if latch.wait(seconds: 1e9) {
                    released.add(1, ordering: .sequentiallyConsistent)
                }
            })
        }
        started.wait()
        latch.open()
        for t in threads { pthread_join(t, nil) }
        #expect(released.load(ordering: .sequentiallyConsistent) == 4)
    }
}
