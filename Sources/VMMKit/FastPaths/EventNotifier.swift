import Glibc
import Synchronization

/// One host thread that waits on many eventfds (ioeventfd doorbells, or any fd that
/// becomes readable) and calls each one's callback with the count read from it, so a
/// device hears of guest doorbell writes without any vCPU exit.
///
/// Callbacks run on the notifier thread, one at a time. `stop()` (and deinit) wakes
/// and joins the thread; fds are not closed by the notifier, their owners close them.
public final class EventNotifier: @unchecked Sendable {
    public typealias Callback = @Sendable (UInt64) -> Void
    private struct Watch { let fd: Int32; let callback: Callback }

    private let watches = Lock<[Watch]>([])
    private let wakeFD: Int32
    private let stopping = Atomic<Bool>(false)
    private var thread: pthread_t?
    private let threadLock = Lock<Void>(())

    public init() throws(VMMError) {
        wakeFD = try EventFD.create("the event notifier")
    }

    deinit {
        stop()
        Glibc.close(wakeFD)
    }

    /// Calls `callback(n)` on the notifier thread whenever the guest rang `doorbell`
    /// (n writes since the last call). May be called before or after `start()`.
    public func watch(_ doorbell: IOEventFD, _ callback: @escaping Callback) {
        watch(fd: doorbell.fd, callback)
    }

    /// The same for any eventfd.
    public func watch(fd: Int32, _ callback: @escaping Callback) {
        watches.withLock { $0.append(Watch(fd: fd, callback: callback)) }
        _ = EventFD.signal(wakeFD) // rebuild the poll set
    }

    /// Starts the thread. Idempotent.
    public func start() throws(VMMError) {
        try threadLock.withLock { _ throws(VMMError) in
            guard thread == nil else { return }
            let box = Unmanaged.passRetained(self).toOpaque()
            var tid = pthread_t()
            let rc = pthread_create(&tid, nil, { raw in
                let me = Unmanaged<EventNotifier>.fromOpaque(raw!).takeRetainedValue()
                ThreadName.setCurrent("notifier")
                me.loop()
                return nil
            }, box)
            guard rc == 0 else {
                Unmanaged<EventNotifier>.fromOpaque(box).release()
                throw .systemCallFailed(name: "pthread_create for the event notifier", errno: .init(rawValue: rc))
            }
            thread = tid
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
        while !stopping.load(ordering: .acquiring) {
            let current = watches.withLock { $0 }
            var fds = [pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)]
            fds += current.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
            let rc = poll(&fds, nfds_t(fds.count), -1)
            if rc < 0 { if errno == EINTR { continue } else { return } }
            if fds[0].revents != 0 { _ = EventFD.read(wakeFD) }
            for (i, watch) in current.enumerated() where fds[i + 1].revents & Int16(POLLIN) != 0 {
                let n = EventFD.read(watch.fd)
                if n > 0 { watch.callback(n) }
            }
        }
    }
}
