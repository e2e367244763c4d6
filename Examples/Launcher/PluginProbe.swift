import CProcess
import Glibc
import VMMKit

/// `vmm plugins --probe`: a candidate's handlers are only known by running its `init`,
/// so that runs in a child process (`vmm plugins --probe-child FILE`, this binary
/// again) with a scratch VM, and the listing reads the child's report. A candidate that
/// crashes, hangs or exits in its constructor or `init` takes only the child down and
/// is reported as refused.
enum PluginProbe {
    enum Outcome: Equatable {
        /// One line per handler the plugin registered with an empty config.
        case handlers([String])
        /// `init("")` refused (many plugins need a config): not a broken plugin.
        case initFailed(String)
        /// The file cannot be loaded, or loading it killed the child.
        case refused(String)
    }

    /// How long the child may take by default before it is killed and the candidate refused.
    static let defaultSeconds = 10.0

    /// Child side: loads `file` into a scratch VM and prints what it registered.
    static func child(_ file: String) {
        do {
            let kvm = try KVM.open()
            let vm = try kvm.createVM()
            defer { vm.close() }
            // A vCPU with its CPUID set, as `vmm run` has when it loads plugins: some
            // plugins (AsyncPF) edit CPUID bits at init.
            try vm.createVCPU().configureCPUID(kvm)
            let host = PluginHost(vm: vm, dispatcher: ExitDispatcher())
            host.logHandler = { _, _, _ in }
            host.stopHandler = { _ in }
            defer { host.close() }
            let library: PluginLibrary
            do { library = try PluginLibrary.open(file) } catch { print("refused: \(error)"); return }
            do {
                let loaded = try host.load(library.path)
                for h in loaded.handlers { print("handler: \(h)") }
                print("ok")
            } catch {
                print("init: \(error)")
            }
        } catch {
            print("init: no scratch VM to probe in: \(error)")
        }
    }

    /// Parent side: runs the child for `file` and interprets what it said and how it ended.
    static func run(_ file: String, seconds: Double = defaultSeconds) -> Outcome {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { return .refused("cannot probe: pipe: \(String(cString: strerror(errno)))") }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        defer { close(fds[0]) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        // Nothing else `vmm` holds or inherited reaches the candidate's code (a parent's
        // pipe or socket kept open by a process the candidate starts kept that parent waiting).
        _ = cprocess_spawn_close_from(&actions, 3)
        let words: [String] = ["vmm", "plugins", "--probe-child", file]
        let args: [UnsafeMutablePointer<CChar>?] = words.map { (word: String) in strdup(word) } + [nil]
        defer { args.forEach { free($0) } }
        // The child's crash is the expected outcome, not worth Swift's backtracer.
        var environment: [UnsafeMutablePointer<CChar>?] = [strdup("SWIFT_BACKTRACE=enable=no")]
        var e = environ
        while let entry = e.pointee {
            if strncmp(entry, "SWIFT_BACKTRACE=", 16) != 0 { environment.append(strdup(entry)) }
            e += 1
        }
        environment.append(nil)
        defer { environment.forEach { free($0) } }
        // Processes the candidate forks are reparented here when the child ends, even from
        // a session of their own, so `endOrphans` can end them (none outlives the listing).
        _ = cprocess_become_subreaper()
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, "/proc/self/exe", &actions, nil, args, environment)
        close(fds[1])
        guard rc == 0 else { return .refused("cannot probe: posix_spawn: \(String(cString: strerror(rc)))") }

        var output: [UInt8] = []
        let start = MonotonicClock.now()
        let budget = Int(seconds * 1000)
        /// Milliseconds of the budget left.
        func left() -> Int { budget - Int((MonotonicClock.now() - start) / 1_000_000) }
        var timedOut = false, reaped = false
        var status: Int32 = 0
        var chunk = [UInt8](repeating: 0, count: 4096)
        /// One read of what the child wrote, after waiting up to `ms` for it: nil when
        /// nothing came, false at an end of file (or an error).
        func readSome(waiting ms: Int32) -> Bool? {
            var p = pollfd(fd: fds[0], events: Int16(POLLIN), revents: 0)
            let ready = poll(&p, 1, ms)
            if ready == 0 || (ready < 0 && errno == EINTR) { return nil }
            guard ready > 0 else { return false }
            let n = chunk.withUnsafeMutableBytes { read(fds[0], $0.baseAddress, $0.count) }
            if n > 0, output.count < 1 << 20 { output += chunk[0..<n] }
            return n > 0 || (n < 0 && errno == EINTR)
        }
        while true {
            let remaining = left()
            if remaining <= 0 { timedOut = true; break }
            if let more = readSome(waiting: Int32(min(remaining, 20))) {
                if more { continue }
                break // an end of file
            }
            // Nothing to read: the child may have ended while a process it started keeps
            // the pipe open. What it wrote is in the pipe: read it, a bounded number of times.
            if waitpid(pid, &status, WNOHANG) == pid {
                reaped = true
                for _ in 0..<256 { guard readSome(waiting: 0) == true else { break } }
                break
            }
        }
        // An end of file is not an exit: a child that closed its output and runs on is
        // waited for within the same budget (it held the listing forever before).
        while !timedOut && !reaped {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid { reaped = true; break }
            if r < 0 && errno != EINTR { break }
            if left() <= 0 { timedOut = true; break }
            var pause = timespec(tv_sec: 0, tv_nsec: 2_000_000)
            nanosleep(&pause, nil)
        }
        if timedOut { kill(pid, SIGKILL) }
        if !reaped { while waitpid(pid, &status, 0) < 0 && errno == EINTR {} }
        endOrphans()
        if timedOut { return .refused("init with an empty config did not return within \(seconds) s (probe killed; see --probe-timeout)") }
        if status & 0x7f != 0 {
            let signal = status & 0x7f
            return .refused("crashed while loading or initialising (signal \(signal), \(String(cString: strsignal(signal))))")
        }
        let lines = String(decoding: output, as: UTF8.self).split(separator: "\n").map(String.init)
        if let r = lines.first(where: { $0.hasPrefix("refused: ") }) { return .refused(String(r.dropFirst(9))) }
        if let i = lines.first(where: { $0.hasPrefix("init: ") }) { return .initFailed(String(i.dropFirst(6))) }
        let code = (status >> 8) & 0xff
        guard code == 0, lines.last == "ok" else {
            return .refused("the probe exited with status \(code) before reporting (the library's constructor or init ended the process)")
        }
        return .handlers(lines.filter { $0.hasPrefix("handler: ") }.map { String($0.dropFirst(9)) })
    }

    /// Kills and reaps every process reparented to this one (a subreaper): what a probed
    /// plugin started and left running. Rounds, as one may fork while it is being killed.
    static func endOrphans() {
        for _ in 0..<64 {
            let orphans = children()
            if orphans.isEmpty { return }
            for orphan in orphans { kill(orphan, SIGKILL) }
            var status: Int32 = 0
            for orphan in orphans { while waitpid(orphan, &status, 0) < 0 && errno == EINTR {} }
        }
    }

    /// This process's children, from each of its threads' /proc children list.
    static func children() -> [pid_t] {
        guard let tasks = opendir("/proc/self/task") else { return [] }
        defer { closedir(tasks) }
        var pids: [pid_t] = []
        while let entry = readdir(tasks) {
            let tid = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard Int32(tid) != nil else { continue }
            let fd = open("/proc/self/task/\(tid)/children", O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { continue }
            defer { close(fd) }
            var bytes: [UInt8] = [], chunk = [UInt8](repeating: 0, count: 4096)
            while bytes.count < 1 << 20 {
                let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { break }
                bytes += chunk[0..<n]
            }
            pids += bytes.split(separator: UInt8(ascii: " ")).compactMap { pid_t(String(decoding: $0, as: UTF8.self)) }
        }
        return pids
    }
}
