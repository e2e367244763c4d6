import Glibc

/// Where a UART's transmitted bytes go: a file descriptor (stdout, stderr, a file) or
/// an in-memory buffer for tests.
///
/// A console that does not keep up (a pager, a stalled pipe, a slow disk) never blocks
/// the vCPU. Bytes for a descriptor queue in a bounded buffer (`capacity`, config key
/// `txbuffer`) that a writer thread of the sink's own drains with write(2). While the
/// buffer is full, `isReady` is false: the UART clears LSR.THRE, so a guest that polls it
/// waits and loses nothing. A byte written anyway is dropped and counted (`dropped`), as
/// a 16550 drops a byte written to a busy transmitter. Before this, the vCPU blocked in
/// write(2) inside its handler until the handler budget ended the run (status 8).
///
/// Bytes are batched: they are written per line or per 4 KiB, when the guest reads a
/// register (it is polling, so what it printed must show), on `flush()` and on `close()`.
/// A short batch (up to 256 bytes, a line) that the console takes at once (poll says
/// POLLOUT) while the writer is idle is written by the caller itself, as before the
/// writer existed: then the guest's output precedes whatever the VMM prints after the
/// exit that follows it (`vmm … 2>&1`), instead of racing the writer thread.
///
/// Given a `ThreadStarter`, the writer starts only when a batch first finds the console
/// busy: a guest whose console keeps up (most) never has it. The request comes from the
/// vCPU thread, which may not start threads; the starter has a thread that may do it.
public final class UARTOutputSink: @unchecked Sendable {
    public static let defaultCapacity = 1 << 20
    /// How long `close()` waits, by default, for a console that takes nothing.
    public static let defaultCloseWait = 5.0
    private static let batch = 4096
    /// The most a caller writes itself: to a pipe that polls writable, at most PIPE_BUF
    /// never blocks; to a terminal, less than its wake-up threshold (256) is taken whole.
    private static let directLimit = 256

    private let capture: Bool
    private let ownsFD: Bool
    public let capacity: Int
    public let closeWait: Double
    private let ring: UnsafeMutablePointer<UInt8>?
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    /// The writer waits on it for bytes; `close()` for the writer's progress.
    private let wake = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private let progress = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var writer: pthread_t?
    /// nil: the writer started with the sink (or there is none, for a buffer).
    private let starter: ThreadStarter?

    // Guarded by mutex:
    private var fd: Int32
    private var head = 0
    private var count = 0
    /// Bytes appended since the writer was last woken.
    private var unannounced = 0
    private var woken = false
    private var closing = false
    private var writerDone = false
    /// The writer is inside write(2) with bytes from `head`.
    private var inWrite = false
    private var wasFull = false
    private var captureBuffer: [UInt8] = []
    private var failureText: String?
    private var droppedCount: UInt64 = 0
    private var undeliveredCount = 0
    private var roomHandler: (@Sendable () -> Void)?
    /// The writer was asked for (started, or being started by `starter`).
    private var writerAsked = false
    /// Set by `signalWriter` for the caller holding the lock, which starts the writer
    /// once it has let go of it (`takeStartDue`).
    private var startDue = false
    /// A caller is starting the writer; `close()` waits for it (`progress`).
    private var starting = false

    /// Opens the destination `output` names (files are created or truncated) and, for a
    /// descriptor, starts the writer thread, or with `starter` lets the first batch the
    /// console cannot take start it. The thread holds the sink until `close()`: call it
    /// (UARTDevice and the plugin do), or the thread and the sink outlive their use.
    public init(_ output: UARTConfig.Output, capacity: Int = UARTOutputSink.defaultCapacity,
                closeWait: Double = UARTOutputSink.defaultCloseWait, starter: ThreadStarter? = nil) throws(UARTConfigError) {
        var fd: Int32 = -1
        var owns = false
        switch output {
        case .stdout: fd = STDOUT_FILENO
        case .stderr: fd = STDERR_FILENO
        case .buffer, .none: break
        case let .file(path):
            fd = ConsoleFile.open(path, forOutput: true)
            guard fd >= 0 else {
                let reason = String(cString: strerror(errno))
                throw UARTConfigError("uart: key 'output': cannot open '\(path)': \(reason) (errno \(errno))", key: "output")
            }
            owns = true
        }
        self.fd = fd
        ownsFD = owns
        self.starter = starter
        capture = output == .buffer
        self.capacity = max(capacity, 1)
        self.closeWait = closeWait.isFinite ? min(max(closeWait, 0), 3600) : Self.defaultCloseWait // no trap below
        // Untouched pages of the buffer cost no memory: only what a backlog fills is resident.
        ring = fd >= 0 ? .allocate(capacity: self.capacity) : nil
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(wake, nil)
        // The close's timed wait is on the monotonic clock: a host clock stepped back
        // would have held it for as long as the step.
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        pthread_cond_init(progress, &attr)
        pthread_condattr_destroy(&attr)
        guard fd >= 0 else { writerDone = true; return }
        guard starter == nil else { return }
        if let rc = startWriter(Self.create) {
            writerDone = true
            if owns { Glibc.close(fd) }
            self.fd = -1
            throw UARTConfigError("uart: key 'output': \(Self.cannotStart(rc))", key: "output")
        }
    }

    /// Starts the writer with `start`; nil, or the errno of the failure. The lock is not
    /// held: the writer takes it at once.
    private func startWriter(_ start: ThreadStarter) -> Int32? {
        let box = Unmanaged.passRetained(self)
        switch start({ raw in
            let sink = Unmanaged<UARTOutputSink>.fromOpaque(raw!).takeRetainedValue()
            UARTOutputSink.nameThread("vmm-uart-out")
            sink.writeLoop()
            return nil
        }, box.toOpaque()) {
        case let .success(thread):
            locked { writer = thread }
            return nil
        case let .failure(error):
            box.release()
            return error.errno
        }
    }

    /// Under the lock: whether `signalWriter` asked this caller to start the writer.
    private func takeStartDue() -> Bool {
        guard startDue else { return false }
        startDue = false
        starting = true
        return true
    }

    /// Starts the writer `takeStartDue` said is due, with `starter`. A writer that cannot
    /// start fails the console as a failed write does: the bytes are dropped, `failure`
    /// says why, and a UART waiting for room gets it: by the room handler when `notify`,
    /// else by `send`'s answer (the UART sends under its lock, which the handler takes).
    private func startDueWriter(notify: Bool = true) {
        guard let starter else { return }
        let rc = startWriter(starter)
        let handler: (@Sendable () -> Void)? = locked {
            starting = false
            pthread_cond_broadcast(progress)
            guard let rc else { return nil }
            failureText = Self.cannotStart(rc)
            count = 0
            if ownsFD, fd >= 0 { Glibc.close(fd) }
            fd = -1
            writerDone = true
            pthread_cond_broadcast(progress)
            defer { wasFull = false }
            return wasFull && notify ? roomHandler : nil
        }
        handler?()
    }

    deinit {
        // The writer holds a reference while it runs: here it has ended.
        if let writer { pthread_join(writer, nil) }
        if ownsFD, fd >= 0 { Glibc.close(fd) }
        ring?.deallocate()
        pthread_cond_destroy(progress); progress.deallocate()
        pthread_cond_destroy(wake); wake.deallocate()
        pthread_mutex_destroy(mutex); mutex.deallocate()
    }

    private func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return body()
    }

    /// One transmitted byte. Never blocks on the console.
    public func write(_ byte: UInt8) { _ = send(byte, notify: true) }

    /// One transmitted byte, then `isReady`, in one hold of the lock: the UART asks both
    /// on every THR write, and this is its per-byte path. Never blocks on the console,
    /// never calls the room handler (`startDueWriter`).
    public func send(_ byte: UInt8) -> Bool { send(byte, notify: false) }

    private func send(_ byte: UInt8, notify: Bool) -> Bool {
        let (start, room) = locked { () -> (Bool, Bool) in
            append(byte)
            return (takeStartDue(), hasRoom)
        }
        guard start else { return room }
        startDueWriter(notify: notify) // a writer that cannot start fails the console: room again
        return isReady
    }

    /// Under the lock.
    private func append(_ byte: UInt8) {
        if capture { captureBuffer.append(byte); return }
        guard let ring, fd >= 0, !closing else { return }
        guard count < capacity else { droppedCount &+= 1; return }
        ring[(head + count) % capacity] = byte
        count += 1
        unannounced += 1
        if count == capacity { wasFull = true }
        if byte == 10 || unannounced >= Self.batch || count == capacity { writeOrSignal() }
    }

    /// What is buffered goes out now if the caller can write it without blocking, else
    /// by the writer. Under the lock.
    private func writeOrSignal() {
        if count > Self.directLimit || inWrite || wasFull || !consoleTakesNow() {
            signalWriter()
            return
        }
        while count > 0 {
            let n = Glibc.write(fd, ring! + head, min(count, capacity - head))
            // A failure or a short write is the writer's to retry and report.
            guard n > 0 else { signalWriter(); return }
            head = (head + n) % capacity
            count -= n
        }
        unannounced = 0
    }

    private func consoleTakesNow() -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        return poll(&p, 1, 0) == 1 && p.revents & Int16(POLLOUT) != 0 && p.revents & Int16(POLLERR | POLLHUP) == 0
    }

    /// Room for one more byte (always, for a buffer, none, or a console that failed).
    public var isReady: Bool { locked { hasRoom } }

    /// `isReady`, under the lock.
    private var hasRoom: Bool { ring == nil || fd < 0 || count < capacity }

    /// Called (on the writer thread, no lock held) when the buffer had filled up and has
    /// room again: the UART raises its THRE interrupt then. Set before the guest runs.
    public func onRoom(_ handler: @escaping @Sendable () -> Void) { locked { roomHandler = handler } }

    /// Writes what is buffered, or wakes the writer for it; never waits for the console.
    public func flush() {
        let start = locked { () -> Bool in
            if count > 0, fd >= 0, !closing { writeOrSignal() }
            return takeStartDue()
        }
        if start { startDueWriter() }
    }

    private func signalWriter() {
        unannounced = 0
        woken = true
        pthread_cond_signal(wake)
        if !writerAsked, starter != nil { writerAsked = true; startDue = true }
    }

    /// Everything written so far (buffer output only).
    public var captured: [UInt8] { locked { captureBuffer } }

    /// Empties the capture buffer, returning what it held.
    public func takeCaptured() -> [UInt8] { locked { defer { captureBuffer = [] }; return captureBuffer } }

    /// Why output stopped reaching its fd, if it did (the guest is never told).
    public var failure: String? { locked { failureText } }

    /// Bytes the guest wrote while the buffer was full, dropped.
    public var dropped: UInt64 { locked { droppedCount } }

    /// Bytes `close()` gave up on: the console had not taken them `closeWait` seconds later.
    public var undelivered: Int { locked { undeliveredCount } }

    /// One line per way output was lost, for the user at shutdown (after `close()`).
    public func lossReport(name: String) -> [String] {
        var lines: [String] = []
        if let failure { lines.append("\(name): console output stopped, the guest's later output was lost: \(failure)") }
        let dropped = dropped
        if dropped > 0 {
            lines.append("\(name): the console fell behind: \(dropped) bytes the guest wrote while the \(capacity)-byte output buffer was full were dropped")
        }
        let undelivered = undelivered
        if undelivered > 0 {
            let wait = closeWait == closeWait.rounded() ? String(Int(closeWait)) : String(closeWait)
            lines.append("\(name): the console did not take the last \(undelivered) bytes of output within \(wait) s at shutdown; they were not delivered")
        }
        return lines
    }

    /// Writes out what is buffered, waiting up to `closeWait` s for a console that takes
    /// nothing, and closes a file this sink opened. Idempotent.
    public func close() {
        // A writer never started (its console kept up, or it was asked for just now):
        // bytes still buffered get one, started here, where threads may start.
        let startHere = locked { () -> Bool in
            while starting { pthread_cond_wait(progress, mutex) }
            guard !closing, starter != nil, !writerAsked else { return false }
            writerAsked = true
            return count > 0 && fd >= 0
        }
        if startHere, let rc = startWriter(Self.create) {
            locked { failureText = Self.cannotStart(rc); count = 0 }
        }
        var join: pthread_t?
        locked {
            guard !closing else { return }
            closing = true
            if writer == nil, !writerDone {
                // No writer ever ran: this is where the file it would close is closed.
                if ownsFD, fd >= 0 { Glibc.close(fd) }
                fd = -1
                writerDone = true
                return
            }
            woken = true
            pthread_cond_signal(wake)
            // VMMKit's `Deadline.after(seconds:)`, which this model (it depends on nothing)
            // cannot import; `closeWait` is clamped to [0, 3600] s, so nothing overflows.
            var deadline = timespec()
            clock_gettime(CLOCK_MONOTONIC, &deadline)
            let wait = (closeWait * 1e9).rounded()
            var nanoseconds = deadline.tv_nsec + Int(wait.truncatingRemainder(dividingBy: 1e9))
            deadline.tv_sec += Int(wait / 1e9) + nanoseconds / 1_000_000_000
            nanoseconds %= 1_000_000_000
            deadline.tv_nsec = nanoseconds
            while !writerDone {
                if pthread_cond_timedwait(progress, mutex, &deadline) == ETIMEDOUT, !writerDone {
                    // The writer is inside write(2) and cannot be called back: it ends (and
                    // closes our file) when that returns, detached, since nobody will join
                    // it (and `deinit` may then run on it). What it holds is not delivered.
                    undeliveredCount = count
                    if let writer { pthread_detach(writer) }
                    writer = nil
                    return
                }
            }
            join = writer
            writer = nil
        }
        if let join { pthread_join(join, nil) }
    }

    /// The writer thread: waits to be woken, writes everything buffered, and repeats until
    /// `close()` or a failed write.
    private func writeLoop() {
        pthread_mutex_lock(mutex)
        while true {
            while !woken { pthread_cond_wait(wake, mutex) }
            if count == 0 {
                if closing { break }
                woken = false
                continue
            }
            // Only this thread moves `head`; the vCPU writes past head + count only. At most
            // PIPE_BUF a call: to a pipe that is all or nothing, so a write blocked at
            // close() has delivered none of what `undelivered` counts.
            let start = head, length = min(count, capacity - head, Int(PIPE_BUF)), fd = fd
            inWrite = true
            pthread_mutex_unlock(mutex)
            let n = Glibc.write(fd, ring! + start, length)
            let error = errno
            pthread_mutex_lock(mutex)
            inWrite = false
            if n > 0 {
                head = (head + n) % capacity
                count -= n
                pthread_cond_broadcast(progress)
                if wasFull {
                    // Cleared with or without a handler: while set, callers leave every
                    // batch to this thread.
                    wasFull = false
                    if let handler = roomHandler {
                        pthread_mutex_unlock(mutex)
                        handler()
                        pthread_mutex_lock(mutex)
                    }
                }
            } else if !(n < 0 && error == EINTR) {
                failureText = "write to fd \(fd) failed: \(String(cString: strerror(error))) (errno \(error))"
                count = 0
                break
            }
        }
        // A failed console is not written to again; a file of ours is closed here, after
        // the last write, so close() cannot reuse its number under a blocked writer.
        if ownsFD { Glibc.close(self.fd) }
        self.fd = -1
        writerDone = true
        pthread_cond_broadcast(progress)
        // A failed console takes every byte now (dropping it): a UART waiting for room
        // must not wait forever.
        let handler = wasFull ? roomHandler : nil
        wasFull = false
        pthread_mutex_unlock(mutex)
        handler?()
    }
}
