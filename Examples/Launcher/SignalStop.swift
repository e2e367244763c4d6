import Glibc
import Synchronization
import VMMKit

/// SIGTERM, SIGINT and SIGHUP stop `vmm run` and `vmm restore` as `vmm ctl stop` does:
/// the vCPUs stop, `--snapshot-on-stop` saves the machine (status 22), a request the
/// control API is answering (a snapshot being written) is finished, its socket removed
/// and the plugins closed; then `vmm` ends by the signal, as a shell expects of a process
/// it signalled. Before, the default action ended the process where it stood: a
/// snapshot being written left `DIR.partial-PID` and the socket file behind, and
/// `--snapshot-on-stop` saved nothing.
///
/// A second signal while the stop is under way ends the process at once (by the action
/// that was there before: the default). Ignored signals (`nohup`) stay ignored.
enum SignalStop {
    static let signals: [Int32] = [SIGTERM, SIGINT, SIGHUP]
    /// The first of `signals` received, 0 before.
    static let first = Atomic<Int32>(0)
    /// The handler's one async-signal-safe act: a byte into this pipe, read by `Watch`.
    nonisolated(unsafe) static var readEnd: Int32 = -1
    nonisolated(unsafe) static var writeEnd: Int32 = -1
    /// The actions installed before ours, by signal number.
    nonisolated(unsafe) static let previous: UnsafeMutablePointer<sigaction> = {
        let p = UnsafeMutablePointer<sigaction>.allocate(capacity: 65)
        p.initialize(repeating: sigaction(), count: 65)
        return p
    }()

    /// Installs the handlers; called once, before plugins load (a plugin that chains
    /// its own handler, the UART's terminal restore, then runs first and calls ours).
    static func install() throws(LauncherError) {
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else {
            throw LauncherError(.host, "cannot watch for SIGTERM: pipe failed: \(String(cString: strerror(errno))) (errno \(errno))")
        }
        for fd in ends { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        // The handler must never block: the pipe holds far more than one byte.
        _ = fcntl(ends[1], F_SETFL, fcntl(ends[1], F_GETFL) | O_NONBLOCK)
        (readEnd, writeEnd) = (ends[0], ends[1])
        for sig in signals {
            var old = sigaction()
            sigaction(sig, nil, &old)
            if let h = old.__sigaction_handler.sa_handler, unsafeBitCast(h, to: Int.self) == 1 { continue } // SIG_IGN
            previous[Int(sig)] = old
            var action = sigaction()
            action.__sigaction_handler.sa_sigaction = { sig, _, _ in
                if SignalStop.first.compareExchange(expected: 0, desired: sig, ordering: .relaxed).exchanged {
                    var byte: UInt8 = 1
                    _ = write(SignalStop.writeEnd, &byte, 1)
                } else {
                    // The second: the earlier action, once this handler returns.
                    sigaction(sig, SignalStop.previous + Int(sig), nil)
                    raise(sig)
                }
            }
            action.sa_flags = Int32(SA_SIGINFO | SA_RESTART)
            sigaction(sig, &action, nil)
        }
    }

    /// The signal's name for messages: "SIGTERM".
    static func name(_ sig: Int32) -> String {
        switch sig {
        case SIGTERM: "SIGTERM"
        case SIGINT: "SIGINT"
        case SIGHUP: "SIGHUP"
        default: "signal \(sig)"
        }
    }

    /// Exits with `status`, or, after a stop by a signal, says so and ends by that signal
    /// (a snapshot saved by the stop keeps its status 22: what the user asked for).
    static func exit(_ status: Int32) -> Never {
        let sig = first.load(ordering: .relaxed)
        if sig != 0 && status != LauncherStatus.snapshotSaved.rawValue {
            ExitStats.err("vmm: stopped by \(name(sig))\n")
            fflush(nil)
            var dfl = sigaction()
            sigaction(sig, &dfl, nil)
            raise(sig)
            Glibc.exit(128 + sig)
        }
        Glibc.exit(status)
    }

    /// A thread that turns the handler's byte into a stop of `vm` (a signal received
    /// before it started, while plugins loaded, is acted on at once), and starts the
    /// threads the vCPUs ask for (`ThreadRequest`).
    final class Watch: @unchecked Sendable {
        private var thread = pthread_t()
        private let vm: VirtualMachine
        private let onStop: @Sendable (Int32) -> Void

        init(vm: VirtualMachine, onStop: @escaping @Sendable (Int32) -> Void) throws(VMMError) {
            self.vm = vm
            self.onStop = onStop
            // It also starts the threads the vCPUs ask for (`ThreadRequest`).
            ThreadRequest.setServing(true)
            do { thread = try HostThread.start("signal-stop") { self.wait() } } catch {
                ThreadRequest.setServing(false)
                throw error
            }
        }

        private func wait() {
            defer { ThreadRequest.setServing(false) }
            var byte: UInt8 = 0
            while true {
                let n = read(SignalStop.readEnd, &byte, 1)
                if n < 0 && errno == EINTR { continue }
                guard n == 1 else { return }
                switch byte {
                case 1:
                    let sig = SignalStop.first.load(ordering: .relaxed)
                    vm.requestStop(.requested)
                    onStop(sig)
                case ThreadRequest.pipeByte: ThreadRequest.serve()
                default: return // 2: cancelled
                }
            }
        }

        /// Ends the thread once the run is over.
        func cancel() {
            var byte: UInt8 = 2
            _ = write(SignalStop.writeEnd, &byte, 1)
            pthread_join(thread, nil)
        }
    }
}
