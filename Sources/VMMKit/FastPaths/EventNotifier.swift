import Glibc
import Synchronization

/// One host thread that waits on many eventfds (ioeventfd doorbells, or any fd that
/// becomes readable) and calls each one's callback with the count read from it, so a
/// device hears of guest doorbell writes without any vCPU exit.
///
/// Callbacks run on the notifier thread, one at a time. `stop()` wakes and joins the
/// thread (which keeps the notifier alive until then).
///
/// The notifier never closes an fd; its owner does, after `unwatch`. An fd closed while
/// still watched could be reused for an unrelated file, which the thread would then poll
/// and read. A watched fd that reports POLLNVAL (closed anyway), or POLLERR or POLLHUP
/// with nothing to read (a pipe whose writer went away), is dropped, so the thread
/// never spins on it.
public final class EventNotifier: @unchecked Sendable {
    public typealias Callback = @Sendable (UInt64) -> Void

    private final class Watch {
        let fd: Int32
        let callback: Callback
        /// Cleared by `unwatch` under the mutex. The thread tests it before each read, so
        /// a callback that unwatches another fd stops that fd's callback in the same pass.
        let live = Atomic<Bool>(true)
        init(fd: Int32, callback: @escaping Callback) { self.fd = fd; self.callback = callback }
    }

    private let lock = ConditionLock()
    // Guarded by lock:
    private var watches: [Watch] = []
    /// Bumped by every change to `watches`.
    private var version: UInt64 = 0
    /// The version of the set the thread polls now; `unwatch` waits for it to pass.
    private var polledVersion: UInt64 = 0
    private var loopThread: pthread_t?
    private var failureStorage: VMMError?

    private let wakeFD: Int32
    private let stopping = Atomic<Bool>(false)
    private var thread: pthread_t?
    private let threadLock = Lock<Void>(())
    /// Fault injection for tests: a non-zero errno makes the thread's next `poll` fail
    /// with it (a failure the kernel cannot be made to produce on demand).
    let injectedPollError = Atomic<Int32>(0)
    /// Passes of the thread's loop (one per wake-up), for tests.
    let passes = Atomic<Int>(0)

    public init() throws(VMMError) {
        wakeFD = try EventFD.create("the event notifier")
    }

    deinit {
        stop()
        Glibc.close(wakeFD)
    }

    private func locked<T>(_ body: () -> T) -> T { lock.withLock(body) }

    /// Calls `callback(n)` on the notifier thread whenever the guest rang `doorbell`
    /// (n writes since the last call). May be called before or after `start()`.
    public func watch(_ doorbell: IOEventFD, _ callback: @escaping Callback) {
        watch(fd: doorbell.fd, callback)
    }

    /// The same for any eventfd.
    public func watch(fd: Int32, _ callback: @escaping Callback) {
        locked {
            watches.append(Watch(fd: fd, callback: callback))
            version &+= 1
        }
        _ = EventFD.signal(wakeFD) // rebuild the poll set
    }

    /// Stops watching `doorbell` (`unwatch(fd:)`); call it before closing the doorbell.
    public func unwatch(_ doorbell: IOEventFD) {
        unwatch(fd: doorbell.fd)
    }

    /// Stops watching `fd` (every watch of it). When it returns, the thread no longer
    /// polls or reads `fd` and none of its callbacks runs or will run, so the owner may
    /// close it. Called from a callback (on the notifier thread), it returns at once and
    /// no callback of `fd` runs after it.
    public func unwatch(fd: Int32) {
        let (target, onThread): (UInt64?, Bool) = locked {
            var removed = false
            watches.removeAll { watch in
                guard watch.fd == fd else { return false }
                watch.live.store(false, ordering: .releasing)
                removed = true
                return true
            }
            guard removed else { return (nil, false) }
            version &+= 1
            return (version, loopThread.map { pthread_equal($0, pthread_self()) != 0 } ?? false)
        }
        guard let target, !onThread else { return }
        _ = EventFD.signal(wakeFD)
        locked {
            // The thread takes its next set after the pass in progress (whose callbacks
            // have then returned), or ends: either way it is done with `fd`.
            while loopThread != nil && polledVersion < target { lock.wait() }
        }
    }

    /// The fds watched now, in order (for tests).
    var watchedFDs: [Int32] { locked { watches.map(\.fd) } }

    /// Why the thread ended on its own (its `poll` failed), or nil. Its callbacks no
    /// longer run then; `stop()` still joins it, and `start()` runs a new one.
    public var failure: VMMError? { locked { failureStorage } }

    /// Starts the thread. Idempotent; after `stop()` it starts a new one.
    public func start() throws(VMMError) {
        try threadLock.withLock { _ throws(VMMError) in
            guard thread == nil else { return }
            stopping.store(false, ordering: .releasing)
            locked { failureStorage = nil }
            thread = try HostThread.start("notifier") { self.loop() }
        }
    }

    /// Wakes and joins the thread; callbacks have all returned afterwards. Idempotent.
    public func stop() {
        let tid = threadLock.withLock { _ -> pthread_t? in defer { thread = nil }; return thread }
        guard let tid else { return }
        stopping.store(true, ordering: .releasing)
        _ = EventFD.signal(wakeFD)
        pthread_join(tid, nil)
    }

    private func loop() {
        locked { loopThread = pthread_self() }
        defer {
            locked {
                loopThread = nil
                lock.broadcast()
            }
        }
        var fds: [pollfd] = []
        while !stopping.load(ordering: .acquiring) {
            passes.add(1, ordering: .relaxed)
            let current = locked {
                polledVersion = version
                lock.broadcast()
                return watches
            }
            fds.removeAll(keepingCapacity: true)
            fds.append(pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0))
            for watch in current { fds.append(pollfd(fd: watch.fd, events: Int16(POLLIN), revents: 0)) }
            let injected = injectedPollError.exchange(0, ordering: .relaxed)
            if injected != 0 || poll(&fds, nfds_t(fds.count), -1) < 0 {
                let err = injected != 0 ? injected : errno
                if err == EINTR { continue }
                locked { failureStorage = .systemCallFailed(name: "poll in the event notifier", errno: .init(rawValue: err)) }
                return
            }
            if fds[0].revents != 0 { _ = EventFD.read(wakeFD) }
            var dead: [Watch] = []
            for (i, watch) in current.enumerated() {
                let revents = fds[i + 1].revents
                guard revents != 0, watch.live.load(ordering: .acquiring) else { continue }
                if revents & Int16(POLLIN) != 0 {
                    let n = EventFD.read(watch.fd)
                    if n > 0 { watch.callback(n); continue }
                }
                if revents & Int16(POLLNVAL | POLLERR | POLLHUP) != 0 { dead.append(watch) }
            }
            if !dead.isEmpty { drop(dead) }
        }
    }

    /// Watches whose fd can no longer be read: polled again, they would wake the
    /// thread at once, forever.
    private func drop(_ dead: [Watch]) {
        locked {
            watches.removeAll { watch in dead.contains { $0 === watch } }
            version &+= 1
        }
    }
}
