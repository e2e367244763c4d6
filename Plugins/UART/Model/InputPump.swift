import Glibc
import Synchronization

/// Feeds a UART from a file descriptor (stdin in a launcher) on its own thread, so
/// typed bytes reach the guest (and raise its interrupt) while the vCPU runs.
/// With `rawTerminal: true` and a terminal on the fd, the terminal is put in raw mode
/// for the pump's life and restored when it stops, or on any way out of the process.
public final class InputPump: @unchecked Sendable {
    public let fd: Int32
    private let uart: UART16550
    private let wake: (read: Int32, write: Int32)
    /// Signalled (a byte) when the UART's host queue has room again.
    private let room: (read: Int32, write: Int32)
    private var thread: pthread_t?
    private var terminal: RawTerminal?
    private let ownsFD: Bool

    /// Reads the file at `path` into `uart` (a FIFO is held open until the pump stops,
    /// whoever writes to it: `ConsoleFile`); the pump owns the fd.
    public convenience init(path: String, into uart: UART16550) throws(UARTConfigError) {
        let fd = ConsoleFile.open(path, forOutput: false)
        guard fd >= 0 else {
            throw UARTConfigError("uart: key 'input': cannot open '\(path)': \(String(cString: strerror(errno))) (errno \(errno))", key: "input")
        }
        do throws(UARTConfigError) { try self.init(fd: fd, into: uart, rawTerminal: false, ownsFD: true) } catch {
            Glibc.close(fd)
            throw error
        }
    }

    public init(fd: Int32 = STDIN_FILENO, into uart: UART16550, rawTerminal: Bool = true,
                ownsFD: Bool = false) throws(UARTConfigError) {
        // Everything that can fail comes before the object is whole, so a failure never
        // runs deinit (which would close what the caller still owns).
        let terminal = rawTerminal && isatty(fd) != 0 ? try RawTerminal(fd: fd) : nil
        var pipeFDs: [Int32] = [-1, -1]
        guard pipe(&pipeFDs) == 0 else {
            throw UARTConfigError("uart: key 'input': cannot create a pipe (errno \(errno))", key: "input")
        }
        _ = fcntl(pipeFDs[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(pipeFDs[1], F_SETFD, FD_CLOEXEC)
        // The room signal: a pipe, both ends non-blocking (a full pipe already says "room").
        var roomFDs: [Int32] = [-1, -1]
        guard pipe(&roomFDs) == 0 else {
            let e = errno
            Glibc.close(pipeFDs[0])
            Glibc.close(pipeFDs[1])
            throw UARTConfigError("uart: key 'input': cannot create a pipe (errno \(e))", key: "input")
        }
        for end in roomFDs {
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
            _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
        }
        self.room = (roomFDs[0], roomFDs[1])
        self.fd = fd
        self.ownsFD = ownsFD
        self.uart = uart
        self.wake = (pipeFDs[0], pipeFDs[1])
        self.terminal = terminal
    }

    deinit {
        stop()
        Glibc.close(wake.read)
        Glibc.close(wake.write)
        Glibc.close(room.read)
        Glibc.close(room.write)
        if ownsFD { Glibc.close(fd) }
    }

    /// Starts the reader thread.
    public func start() throws(UARTConfigError) {
        guard thread == nil else { return }
        let box = Unmanaged.passRetained(self).toOpaque()
        var tid = pthread_t()
        let rc = pthread_create(&tid, nil, { raw in
            let me = Unmanaged<InputPump>.fromOpaque(raw!).takeRetainedValue()
            me.loop()
            return nil
        }, box)
        guard rc == 0 else {
            Unmanaged<InputPump>.fromOpaque(box).release()
            throw UARTConfigError("uart: key 'input': cannot start the input thread (error \(rc))", key: "input")
        }
        thread = tid
    }

    /// Stops the thread and restores the terminal. Idempotent.
    public func stop() {
        if let tid = thread {
            var byte: UInt8 = 1
            _ = Glibc.write(wake.write, &byte, 1)
            pthread_join(tid, nil)
            thread = nil
            uart.cancelInputRoomWait() // its notification writes to `room`, closed in deinit
        }
        terminal?.restore()
        terminal = nil
    }

    /// Reads while the UART has room for more host input; with none, waits for the
    /// guest to take some (the bytes stay in the file, pipe or terminal meanwhile).
    private func loop() {
        var buffer = [UInt8](repeating: 0, count: 256)
        let signal = room.write
        while true {
            let space = uart.inputRoom { var one: UInt8 = 1; _ = Glibc.write(signal, &one, 1) }
            var fds = [pollfd(fd: space > 0 ? fd : room.read, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: wake.read, events: Int16(POLLIN), revents: 0)]
            let rc = poll(&fds, 2, -1)
            if rc < 0 { if errno == EINTR { continue } else { return } }
            if fds[1].revents != 0 { return }
            if space == 0 {
                var drained = [UInt8](repeating: 0, count: 64)
                _ = Glibc.read(room.read, &drained, drained.count)
                continue
            }
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, min($0.count, space)) }
            if n < 0, errno == EINTR || errno == EAGAIN { continue }
            if n <= 0 { return } // end of input: the guest just sees no more bytes
            uart.receive(buffer[0..<n])
        }
    }
}
