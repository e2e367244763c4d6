import Glibc
import Synchronization

/// Puts a terminal in raw input mode for a guest console and restores it on every way
/// out: `restore()`, deinit, normal process exit (atexit) and every signal that ends a
/// process: the faults (SIGSEGV, SIGBUS, SIGILL — a Swift runtime trap —, SIGFPE — a
/// plugin's divide by zero —, SIGTRAP, SIGABRT) always, and the terminating signals
/// (SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGALRM, SIGXCPU, SIGXFSZ, SIGUSR1/2,
/// SIGVTALRM, SIGPROF, SIGPWR...) unless something already handles or ignores them.
/// After the restore the signal's earlier action runs as if we had not been there.
/// SIGSYS is left to seccomp's reporting; SIGKILL cannot be caught.
///
/// Input is raw (no line editing, no echo, bytes as typed); output keeps its newline
/// translation so host-side text stays readable; ISIG stays on so Ctrl-C still ends
/// the VMM (and restores the terminal on its way out). One raw terminal at a time.
public final class RawTerminal: @unchecked Sendable {
    public let fd: Int32

    /// Switches `fd` to raw mode. Throws (naming the fd) when it is not a terminal.
    public init(fd: Int32 = STDIN_FILENO) throws(UARTConfigError) {
        var saved = termios()
        guard tcgetattr(fd, &saved) == 0 else {
            throw UARTConfigError("uart: key 'input': fd \(fd) is not a terminal (\(String(cString: strerror(errno))))", key: "input")
        }
        let installed = RawTerminalState.install(fd: fd, saved: saved)
        guard installed else {
            throw UARTConfigError("uart: key 'input': another UART already holds the terminal in raw mode", key: "input")
        }
        self.fd = fd
        var raw = saved
        raw.c_iflag &= ~tcflag_t(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON)
        raw.c_lflag &= ~tcflag_t(ECHO | ECHONL | ICANON | IEXTEN)
        raw.c_cflag &= ~tcflag_t(CSIZE | PARENB)
        raw.c_cflag |= tcflag_t(CS8)
        withUnsafeMutableBytes(of: &raw.c_cc) { cc in
            cc[Int(VMIN)] = 1
            cc[Int(VTIME)] = 0
        }
        tcsetattr(fd, TCSANOW, &raw)
    }

    deinit { restore() }

    /// Puts the saved settings back. Idempotent.
    public func restore() { RawTerminalState.restoreNow() }

    /// Whether some terminal is currently held raw by this process.
    public static var isActive: Bool { RawTerminalState.active.load(ordering: .acquiring) }
}

/// Process-wide because signal handlers and atexit cannot capture context; written
/// only while `active` is false, read by handlers only while it is true.
enum RawTerminalState {
    nonisolated(unsafe) static var fd: Int32 = -1
    /// On the heap, not a `static var` of type termios: Swift 6.3 emits such a global
    /// as a packed 57-byte LLVM object (the C struct's 3 padding bytes before c_ispeed
    /// dropped), so storing a whole 60-byte termios wrote 3 bytes past it, into the
    /// next global (found by ASan; RELIABILITY.md, Sanitizers).
    nonisolated(unsafe) static let saved: UnsafeMutablePointer<termios> = {
        let p = UnsafeMutablePointer<termios>.allocate(capacity: 1)
        p.initialize(to: termios())
        return p
    }()
    static let active = Atomic<Bool>(false)
    static let fatalSignals: [Int32] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGABRT, SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP]
    /// Fatal only under their default action: hooked only while nobody handles them.
    static let terminatingSignals: [Int32] = [SIGPIPE, SIGALRM, SIGXCPU, SIGXFSZ, SIGUSR1, SIGUSR2, SIGVTALRM, SIGPROF,
                                              SIGSTKFLT, SIGPWR]

    /// The actions that were installed before ours, indexed by signal number, put back
    /// (and re-raised into) once the terminal is restored.
    nonisolated(unsafe) static let previous: UnsafeMutablePointer<sigaction> = {
        let p = UnsafeMutablePointer<sigaction>.allocate(capacity: 65)
        p.initialize(repeating: sigaction(), count: 65)
        return p
    }()

    private static let hooksOnce: Void = {
        atexit { RawTerminalState.restoreNow() }
        _ = previous
        for sig in fatalSignals + terminatingSignals {
            var action = sigaction()
            action.__sigaction_handler.sa_sigaction = { sig, info, _ in
                RawTerminalState.restoreNow()
                // Whoever handled this signal before us (the default action, the Swift
                // runtime's crash reporter) gets it next, as if we had not been there.
                // A fault signal sent with kill (si_code <= 0) is no crash: there is no
                // faulting instruction to re-run once a crash reporter returns, so it
                // gets the default action, which ends the process as the sender meant.
                let fault = sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE || sig == SIGTRAP
                if let info, info.pointee.si_code <= 0, fault {
                    var dfl = sigaction()
                    sigaction(sig, &dfl, nil)
                } else {
                    sigaction(sig, RawTerminalState.previous + Int(sig), nil)
                }
                raise(sig)
            }
            sigemptyset(&action.sa_mask)
            action.sa_flags = Int32(SA_ONSTACK | SA_SIGINFO) // SA_ONSTACK: runs even on a stack overflow, if an alternate stack exists
            var old = sigaction()
            sigaction(sig, nil, &old)
            if let h = old.__sigaction_handler.sa_handler, unsafeBitCast(h, to: Int.self) == 1 { continue } // SIG_IGN: keep ignored signals ignored
            // A terminating signal someone handles is not fatal: leave it to them.
            if terminatingSignals.contains(sig), old.__sigaction_handler.sa_handler != nil { continue }
            previous[Int(sig)] = old
            sigaction(sig, &action, nil)
        }
    }()

    static func install(fd: Int32, saved: termios) -> Bool {
        _ = hooksOnce
        guard !active.load(ordering: .acquiring) else { return false }
        self.fd = fd
        self.saved.pointee = saved
        active.store(true, ordering: .releasing)
        return true
    }

    /// Async-signal-safe: an atomic exchange and tcsetattr.
    static func restoreNow() {
        guard active.exchange(false, ordering: .acquiringAndReleasing) else { return }
        tcsetattr(fd, TCSANOW, saved)
    }
}
