import Glibc
import Synchronization
import Testing
@testable import VMMAsyncPF

/// The async-PF fetcher's queue (pager/1 install_page_async lands here).
@Suite("Async-PF fetcher queue")
struct AsyncPFFetcherTests {
    @Test("at most 65,536 fetches wait: one more is refused (a plugin thread flooding install_page_async grew it without bound, drained at a quadratic cost); all taken run once, in order; none after close")
    func bounded() throws {
        let fetcher = try AsyncPFFetcher()
        let release = Atomic<Bool>(false), started = Atomic<Bool>(false)
        let ran = Mutex<[Int]>([])
        // The first job holds the thread until everything else is queued.
        #expect(fetcher.enqueue {
            started.store(true, ordering: .releasing)
            while !release.load(ordering: .acquiring) { usleep(1000) }
        })
        while !started.load(ordering: .acquiring) { usleep(1000) }
        for i in 0..<AsyncPFFetcher.maxQueued {
            let queued = fetcher.enqueue { ran.withLock { $0.append(i) } }
            if !queued { Issue.record("job \(i) refused"); break }
        }
        #expect(!fetcher.enqueue { ran.withLock { $0.append(-1) } }, "one past the bound")
        release.store(true, ordering: .releasing)
        fetcher.close()
        #expect(ran.withLock { $0 } == Array(0..<AsyncPFFetcher.maxQueued))
        #expect(!fetcher.enqueue {}, "closed")
    }
}
