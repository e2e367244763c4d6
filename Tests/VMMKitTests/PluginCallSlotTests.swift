import Glibc
import Synchronization
import Testing
@testable import VMMKit

/// The registry of plugin call slots, read by watchdogs while vCPU threads come and go.
@Suite("Plugin call slot registry")
struct PluginCallSlotTests {
    /// A watchdog poll used to hold a strong reference to each slot it walked; when the
    /// slot's thread ended meanwhile, the poll's release freed the slot under the
    /// registry's lock and `deinit` waited for that same lock: the watchdog hung, and
    /// `PluginHost.close()` with it (seen once in a fresh-clone CI run).
    @Test("threads that end while a watchdog polls free their slots; the poll never deadlocks")
    func churnWhilePolling() throws {
        let stop = Flag()
        let polls = Atomic<Int>(0)
        let pollerDone = Flag()
        let poller = spawn {
            while !stop.isSet {
                _ = PluginCallSlot.registry.inProgress()
                polls.add(1, ordering: .relaxed)
            }
            pollerDone.set()
        }
        let started = Atomic<Int>(0), rounds = Atomic<Int>(0)
        let churnDone = Flag()
        // A deadlocked poll holds the lock that ending threads need: churn on a thread of
        // its own too, so that the test can fail instead of hanging. Polls must overlap
        // the churn, which a loaded machine can keep from happening by chance (the poller
        // not scheduled before 800 short threads are done): the churn starts after the
        // first poll and goes on until 100 more polls ran beside it.
        let churn = spawn {
            while polls.load(ordering: .relaxed) == 0 { sched_yield() }
            let first = polls.load(ordering: .relaxed)
            while rounds.load(ordering: .relaxed) < 400 || polls.load(ordering: .relaxed) < first + 100 {
                // Two at a time, so that slots are freed on both cores while the poll walks.
                let threads = (0..<2).map { _ in
                    spawn {
                        // Marked, so that the check below finds these slots and no
                        // other thread's (threads of the test runner may end meanwhile).
                        PluginThreadState.current.slot.address.store(Self.churnMark, ordering: .relaxed)
                        started.add(1, ordering: .relaxed)
                    }
                }
                for t in threads { pthread_join(t, nil) }
                rounds.add(1, ordering: .relaxed)
            }
            churnDone.set()
        }
        // The conditions this test needs; the bound only turns a deadlock into a failure.
        try #require(Self.waitFor { churnDone.isSet }, "threads ending while a watchdog polls did not finish (deadlock)")
        stop.set()
        try #require(Self.waitFor { pollerDone.isSet }, "the polling thread deadlocked in SlotRegistry.inProgress()")
        pthread_join(churn, nil)
        pthread_join(poller, nil)
        #expect(rounds.load(ordering: .relaxed) >= 400 && started.load(ordering: .relaxed) == 2 * rounds.load(ordering: .relaxed))
        #expect(!PluginCallSlot.registry.contains { $0.address.load(ordering: .relaxed) == Self.churnMark })
    }

    /// Not a port or address a plugin call publishes.
    static let churnMark: UInt64 = 0xc4a2_0000_dead_0001

    static func waitFor(_ condition: () -> Bool) -> Bool {
        for _ in 0..<60_000 {
            if condition() { return true }
            sleepMilliseconds(1)
        }
        return condition()
    }
}
