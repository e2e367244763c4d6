import Glibc
import Synchronization
import Testing
@testable import VMMKit

/// The notifier thread's contract on plain eventfds (the doorbell path on real KVM is
/// `FastPathTests.notifier`): unwatch, fds that go bad while watched, a failing poll.
@Suite("The event notifier")
struct EventNotifierTests {
    static func eventfd() throws -> Int32 { try EventFD.create("a test") }

    @Test("a watched fd closed without unwatch is dropped, and the thread does not spin on it")
    func closedWhileWatched() throws {
        let notifier = try EventNotifier()
        let (a, b) = (try Self.eventfd(), try Self.eventfd())
        defer { close(b) }
        let heard = Recorder<String>()
        notifier.watch(fd: a) { _ in heard.append("a") }
        notifier.watch(fd: b) { n in heard.append("b\(n)") }
        try notifier.start()
        defer { notifier.stop() }
        close(a) // a misuse (the owner should unwatch first) the thread must survive
        _ = EventFD.signal(b)
        #expect(eventually { heard.all == ["b1"] && notifier.watchedFDs == [b] })
        // Polled again, the closed fd would wake the thread at once, every time: count
        // its passes around one more doorbell (at most the one in progress and one more).
        let before = notifier.passes.load(ordering: .relaxed)
        _ = EventFD.signal(b)
        #expect(eventually { heard.all == ["b1", "b1"] })
        #expect(notifier.passes.load(ordering: .relaxed) - before <= 2)
    }

    @Test("after unwatch returns, the notifier neither reads the fd nor calls its callback")
    func unwatch() throws {
        let notifier = try EventNotifier()
        let (a, b) = (try Self.eventfd(), try Self.eventfd())
        defer { close(a); close(b) }
        let heard = Recorder<String>()
        notifier.watch(fd: a) { _ in heard.append("a") }
        notifier.watch(fd: b) { _ in heard.append("b") }
        try notifier.start()
        defer { notifier.stop() }
        notifier.unwatch(fd: a)
        #expect(notifier.watchedFDs == [b])
        _ = EventFD.signal(a)
        _ = EventFD.signal(b)
        #expect(eventually { heard.all == ["b"] })
        #expect(EventFD.read(a) == 1) // still the owner's to read
        #expect(heard.all == ["b"])
    }

    @Test("unwatch from another thread waits for the fd's callback in progress to return")
    func unwatchWaitsForTheCallback() throws {
        let notifier = try EventNotifier()
        let a = try Self.eventfd()
        defer { close(a) }
        let events = Recorder<String>()
        let release = Atomic<Bool>(false)
        try withUnsafePointer(to: release) { release in
            nonisolated(unsafe) let release = release
            notifier.watch(fd: a) { _ in
                events.append("callback started")
                while !release.pointee.load(ordering: .acquiring) { usleep(100) }
                events.append("callback returned")
            }
            try notifier.start()
            defer { notifier.stop() }
            _ = EventFD.signal(a)
            #expect(eventually { events.all == ["callback started"] })
            let unwatcher = spawn {
                notifier.unwatch(fd: a)
                events.append("unwatch returned")
            }
            // The watch is gone from the list at once; the call returns only after the callback.
            #expect(eventually { notifier.watchedFDs.isEmpty })
            release.pointee.store(true, ordering: .releasing)
            pthread_join(unwatcher, nil)
        }
        #expect(events.all == ["callback started", "callback returned", "unwatch returned"])
    }

    @Test("a callback that unwatches another fd stops that fd's callback in the same pass, without deadlock")
    func unwatchFromACallback() throws {
        let notifier = try EventNotifier()
        let (a, b, c) = (try Self.eventfd(), try Self.eventfd(), try Self.eventfd())
        defer { close(a); close(b); close(c) }
        let heard = Recorder<String>()
        notifier.watch(fd: a) { _ in heard.append("a"); notifier.unwatch(fd: b) }
        notifier.watch(fd: b) { _ in heard.append("b") }
        notifier.watch(fd: c) { _ in heard.append("c") }
        // Both ready before the first poll: one pass sees a, then b.
        _ = EventFD.signal(a)
        _ = EventFD.signal(b)
        try notifier.start()
        defer { notifier.stop() }
        #expect(eventually { heard.all == ["a"] })
        _ = EventFD.signal(c) // a later pass: the one with a and b has ended
        #expect(eventually { heard.all == ["a", "c"] })
        #expect(EventFD.read(b) == 1)
        #expect(notifier.watchedFDs == [a, c])
    }

    @Test("a failing poll ends the thread with the reason in `failure`; stop joins it and start runs a new one")
    func pollFails() throws {
        let notifier = try EventNotifier()
        let a = try Self.eventfd()
        defer { close(a) }
        let heard = Recorder<String>()
        notifier.watch(fd: a) { _ in heard.append("a") }
        try notifier.start()
        #expect(notifier.failure == nil)
        notifier.injectedPollError.store(EINVAL, ordering: .relaxed)
        _ = EventFD.signal(a) // ends a poll in progress; the next one fails
        #expect(eventually { notifier.failure != nil })
        #expect(notifier.failure.map { "\($0)" } == "poll in the event notifier failed: Invalid argument (errno 22)")
        notifier.stop()
        let before = heard.all.count
        try notifier.start()
        defer { notifier.stop() }
        #expect(notifier.failure == nil)
        _ = EventFD.signal(a)
        #expect(eventually { heard.all.count == before + 1 })
    }
}
