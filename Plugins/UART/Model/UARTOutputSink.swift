import Glibc

/// Where a UART's transmitted bytes go: a file descriptor (stdout, stderr, a file) or
/// an in-memory buffer for tests.
///
/// Bytes are batched (one write(2) per line or per 4 KiB, not per byte) and flushed
/// when the guest reads a register (it is polling, so what it printed must show), on
/// `flush()` and on `close()`.
public final class UARTOutputSink: @unchecked Sendable {
    private struct State {
        var pending: [UInt8] = []
        var captured: [UInt8] = []
        var fd: Int32
        var failure: String?
    }

    private let state: UARTLock<State>
    private let ownsFD: Bool
    private let capture: Bool
    private static let batch = 4096

    /// Opens the destination `output` names. Files are created or truncated.
    public init(_ output: UARTConfig.Output) throws(UARTConfigError) {
        var fd: Int32 = -1
        var owns = false
        switch output {
        case .stdout: fd = STDOUT_FILENO
        case .stderr: fd = STDERR_FILENO
        case .buffer, .none: break
        case let .file(path):
            fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard fd >= 0 else {
                let reason = String(cString: strerror(errno))
                throw UARTConfigError("uart: key 'output': cannot open '\(path)': \(reason) (errno \(errno))", key: "output")
            }
            owns = true
        }
        state = UARTLock(State(fd: fd))
        ownsFD = owns
        capture = output == .buffer
    }

    deinit { close() }

    /// One transmitted byte.
    public func write(_ byte: UInt8) {
        state.withLock { s in
            if capture { s.captured.append(byte); return }
            guard s.fd >= 0 else { return }
            s.pending.append(byte)
            if byte == 10 || s.pending.count >= Self.batch { Self.drain(&s) }
        }
    }

    public func flush() {
        state.withLock { s in if !s.pending.isEmpty { Self.drain(&s) } }
    }

    /// Everything written so far (buffer output only).
    public var captured: [UInt8] { state.withLock { $0.captured } }

    /// Empties the capture buffer, returning what it held.
    public func takeCaptured() -> [UInt8] { state.withLock { s in defer { s.captured = [] }; return s.captured } }

    /// Why output stopped reaching its fd, if it did (the guest is never told).
    public var failure: String? { state.withLock { $0.failure } }

    /// Flushes, and closes a file this sink opened. Idempotent.
    public func close() {
        state.withLock { s in
            if !s.pending.isEmpty { Self.drain(&s) }
            if ownsFD, s.fd >= 0 { Glibc.close(s.fd) }
            s.fd = -1
        }
    }

    private static func drain(_ s: inout State) {
        let fd = s.fd
        var failure: String?
        s.pending.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n > 0 { offset += n; continue }
                if n < 0, errno == EINTR { continue }
                failure = "write to fd \(fd) failed: \(String(cString: strerror(errno))) (errno \(errno))"
                break
            }
        }
        s.pending.removeAll(keepingCapacity: true)
        if let failure { s.failure = failure; s.fd = -1 }
    }
}
