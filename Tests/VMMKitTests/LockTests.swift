import Glibc
import Testing
import VMMKit

/// `Lock`, the pthread mutex that replaced `Synchronization.Mutex` so that ThreadSanitizer
/// sees the project's critical sections (RELIABILITY.md, Sanitizers). Under
/// `scripts/test-sanitizers tsan` the first test is also the check that TSan sees the
/// lock: the same test over a `Mutex` gets "Swift access race" reports.
@Suite struct LockTests {
    /// A Lock shared with threads (a noncopyable value cannot be captured by an escaping
    /// closure, so, like a Mutex, it lives in a class).
    final class Shared<Value>: Sendable {
        let lock: Lock<Value>
        init(_ value: sending Value) { lock = Lock(value) }
    }

    @Test("four threads adding under one Lock lose no update")
    func sectionsOnFourThreadsAddUp() {
        let counts = Shared<[Int: Int]>([:])
        let threads = 4, rounds = 20_000
        let tids = (0..<threads).map { t in
            spawn {
                for i in 0..<rounds {
                    counts.lock.withLock { $0[i % 7, default: 0] += 1 }
                    if i % 1000 == 0 { counts.lock.withLock { $0[100 + t] = i } }
                }
            }
        }
        for tid in tids { pthread_join(tid, nil) }
        let total = counts.lock.withLock { $0.filter { $0.key < 100 }.values.reduce(0, +) }
        #expect(total == threads * rounds)
        #expect(counts.lock.withLock { $0.count } == 7 + threads)
    }

    struct Refused: Error, Equatable { let at: Int }

    @Test("a section that throws keeps its writes, passes its error on and releases the lock")
    func aThrowingSectionKeepsItsWritesAndReleasesTheLock() {
        let value = Shared(0)
        #expect(throws: Refused(at: 1)) {
            try value.lock.withLock { (v: inout Int) throws(Refused) in
                v = 1
                throw Refused(at: v)
            }
        }
        // Taken again from another thread: a lock left held would never let it finish.
        let tid = spawn { value.lock.withLock { $0 += 1 } }
        pthread_join(tid, nil)
        #expect(value.lock.withLock { $0 } == 2)
    }

    final class Tracked: @unchecked Sendable { var n = 0 }
    struct Unique: ~Copyable { var n: Int }

    @Test("the value is destroyed with its Lock; a noncopyable value works")
    func theValueEndsWithTheLockAndMayBeNoncopyable() {
        weak var weakTracked: Tracked?
        do {
            let tracked = Tracked()
            weakTracked = tracked
            let lock = Lock(tracked)
            lock.withLock { $0.n = 5 }
            #expect(tracked.n == 5)
        }
        #expect(weakTracked == nil)

        let unique = Lock(Unique(n: 1))
        let doubled = unique.withLock { (u: inout Unique) -> Int in
            u.n *= 2
            return u.n
        }
        #expect(doubled == 2)
    }
}
