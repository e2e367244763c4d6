import Foundation

/// A child process with stdout and stderr on pipes, read once it has ended (outputs here
/// are far below a pipe's 64 KiB), or stdout before that with `readStdout()`.
final class Spawned {
    let pid: pid_t
    private let out: Int32, err: Int32
    private var done = false
    private var stdoutRead: String?

    init(_ binary: String, _ args: [String]) {
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
        var p = pid_t()
        let rc = posix_spawn(&p, binary, &actions, nil, argv, environ)
        precondition(rc == 0, "posix_spawn \(binary): \(rc)")
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
