import Glibc
import VMMKit

/// A minimal output-only COM1 used when the UART plugin is not loaded: THR writes go
/// to the serial target; LSR always reads "transmitter empty"; DLAB is honoured so a
/// divisor write does not print.
final class BasicConsole: @unchecked Sendable {
    static let com1: UInt16 = 0x3f8
    let base: UInt16
    private let fd: Int32
    private let ownsFD: Bool
    private let target: String
    // Guarded by lock: vCPUs may print at once.
    private var lcr: UInt8 = 0
    private var failed = false
    private var lock = pthread_mutex_t()

    init(_ target: SerialTarget, base: UInt16 = BasicConsole.com1) throws(LauncherError) {
        self.base = base
        pthread_mutex_init(&lock, nil)
        self.target = switch target {
        case .stdio: "stdout"
        case .none: "nothing"
        case let .file(path): path
        }
        switch target {
        case .stdio: fd = 1; ownsFD = false
        case .none: fd = -1; ownsFD = false
        case let .file(path):
            // O_NONBLOCK: open() of a FIFO nobody reads fails at once (ENXIO) instead of
            // blocking the launcher for good. Writes block as before (cleared below).
            let f = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NONBLOCK, 0o644)
            guard f >= 0 else {
                let why = errno == ENXIO ? "a FIFO nobody reads (this stand-in console does not wait for a reader; the UART plugin does)"
                    : String(cString: strerror(errno))
                throw LauncherError(.usage, "--serial file:\(path): cannot open: \(why)")
            }
            _ = fcntl(f, F_SETFL, fcntl(f, F_GETFL) & ~O_NONBLOCK)
            fd = f; ownsFD = true
        }
    }

    deinit {
        if ownsFD { close(fd) }
        pthread_mutex_destroy(&lock)
    }

    func register(on dispatcher: ExitDispatcher) throws(VMMError) {
        try dispatcher.registerPIO(port: base, count: 8, owner: "console (COM1)") { [self] io, _ in
            let register = io.port - base
            pthread_mutex_lock(&lock)
            defer { pthread_mutex_unlock(&lock) }
            if io.isWrite {
                switch register {
                case 0 where lcr & 0x80 == 0:
                    for i in 0..<io.count { emit(UInt8(truncatingIfNeeded: io.element(i))) }
                case 3: lcr = UInt8(truncatingIfNeeded: io.value)
                default: break
                }
            } else {
                io.value = switch register {
                case 2: 0x01 // IIR: no interrupt pending
                case 3: UInt32(lcr)
                case 5: 0x60 // LSR: THRE | TEMT
                default: 0
                }
            }
            return .handled
        }
    }

    /// The LCR (DLAB and the line format), for a snapshot; a restore puts it back.
    var lcrState: UInt8 {
        get {
            pthread_mutex_lock(&lock)
            defer { pthread_mutex_unlock(&lock) }
            return lcr
        }
        set {
            pthread_mutex_lock(&lock)
            defer { pthread_mutex_unlock(&lock) }
            lcr = newValue
        }
    }

    /// One byte to the target. A failed write (a full disk, a closed pipe) is reported
    /// once and ends the output: the guest is never told, so the user is. Under lock.
    private func emit(_ byte: UInt8) {
        guard fd >= 0, !failed else { return }
        var b = byte
        while true {
            let n = write(fd, &b, 1)
            if n == 1 { return }
            if n < 0, errno == EINTR { continue }
            failed = true
            let reason = n < 0 ? "\(String(cString: strerror(errno))) (errno \(errno))" : "it took nothing"
            ExitStats.err("vmm: console (COM1): output stopped, the guest's later output is lost: writing to \(target) failed: \(reason)\n")
            return
        }
    }
}
