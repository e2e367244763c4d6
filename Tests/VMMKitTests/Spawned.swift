import Foundation

/// A child process with stdout and stderr on pipes, read once it has ended (outputs here
/// are far below a pipe's 64 KiB), or stdout before that with `readStdout()`.
final class Spawned {
    let pid: pid_t
    private let out: Int32, err: Int32
    private var done = false
    private var stdoutRead: String?

    /// `defaultSignals`: set to their default actions in the child, whatever this process
    /// ignores (ignored signals survive exec; a shell's `trap` cannot undo that).
    init(_ binary: String, _ args: [String], defaultSignals: [Int32] = []) {
        var o: [Int32] = [0, 0], e: [Int32] = [0, 0]
        pipe(&o)
        pipe(&e)
        for fd in o + e { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, o[1], 1)
        posix_spawn_file_actions_adddup2(&actions, e[1], 2)
        let argv = ([binary] + args).map { strdup($0) } + [nil]
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for sig in defaultSignals { sigaddset(&defaults, sig) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(defaultSignals.isEmpty ? 0 : POSIX_SPAWN_SETSIGDEF))
        var p = pid_t()
        let rc = posix_spawn(&p, binary, &actions, &attributes, argv, environ)
        precondition(rc == 0, "posix_spawn \(binary): \(rc)")
        posix_spawnattr_destroy(&attributes)
        argv.forEach { free($0) }
        posix_spawn_file_actions_destroy(&actions)
        close(o[1])
        close(e[1])
        pid = p
        out = o[0]
        err = e[0]
    }

    /// Waits for the exit; the status and everything written.
    func wait() -> VMMProcess.Result {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return ended(status)
    }

    /// `wait()` if the child ends within `tries` polls 2 ms apart; nil if it runs on.
    func wait(tries: Int) -> VMMProcess.Result? {
        for _ in 0..<tries {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid { return ended(status) }
            usleep(2000)
        }
        return nil
    }

    /// Reads stdout to its end (the child's exit, or its closing it), for `wait()` to report.
    func readStdout() -> String {
        let text = stdoutRead ?? Self.drain(out)
        stdoutRead = text
        return text
    }

    /// The reaped child's status and output.
    private func ended(_ status: Int32) -> VMMProcess.Result {
        done = true
        // A signal's death is reported as `VMMProcess.run` reports it (status = signal).
        let signal = status & 0x7f
        let result = signal != 0 && signal != 0x7f
            ? VMMProcess.Result(status: signal, stdout: readStdout(), stderr: Self.drain(err), signal: signal)
            : VMMProcess.Result(status: (status >> 8) & 0xff, stdout: readStdout(), stderr: Self.drain(err))
        close(out)
        close(err)
        return result
    }

    /// Ends the child if a failed expectation left it running.
    func kill() {
        guard !done else { return }
        Glibc.kill(pid, SIGKILL)
        _ = wait()
    }

    private static func drain(_ fd: Int32) -> String {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
