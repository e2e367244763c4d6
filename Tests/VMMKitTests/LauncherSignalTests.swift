import Foundation
import Glibc
import Testing

/// A parent's blocked signals are inherited across exec: a Swift program that starts
/// `vmm` from a Dispatch or concurrency thread passes on a mask blocking SIGTERM and
/// SIGINT (this test runner's threads do). `vmm` must still stop when told to.
@Suite("vmm and the signals it inherits", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct LauncherSignalTests {
    @Test("vmm started with SIGTERM and SIGINT blocked is still ended by SIGTERM")
    func inheritedMask() throws {
        let spin = try VMMProcess.temp("spin-signal.bin", [0xeb, 0xfe]) // jmp $
        // --max-seconds bounds the run if SIGTERM is not delivered: status 16, not a hang.
        let pid = try Self.spawn(["run", spin, "--load-addr", "0x100000", "--max-seconds", "30"]) { attributes in
            var blocked = sigset_t()
            sigemptyset(&blocked)
            sigaddset(&blocked, SIGTERM)
            sigaddset(&blocked, SIGINT)
            posix_spawnattr_setsigmask(&attributes, &blocked)
            return POSIX_SPAWN_SETSIGMASK
        }
        // The guest runs once the launcher has started its vCPU thread (`vmm-vcpu0`).
        var running = false
        while !running {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid { Issue.record("vmm ended before its vCPU ran: \(status)"); return }
            running = Self.threadNames(pid).contains("vmm-vcpu0")
            if !running { sched_yield() }
        }
        kill(pid, SIGTERM)
        let status = Self.reap(pid)
        let signalled = status & 0x7f != 0 && status & 0x7f != 0x7f
        #expect(signalled && status & 0x7f == SIGTERM, "wait status \(status) (exit status \((status >> 8) & 0xff), 16 is --max-seconds)")
    }

    @Test("SIGTERM stops a run as `vmm ctl stop` does: the snapshot saved (22), the socket removed; a restored run ends by the signal")
    func termStopsGracefully() throws {
        let dir = NSTemporaryDirectory() + "vmm-sigterm-\(getpid())"
        _ = try? VMMProcess.run(binary: "/bin/rm", ["-rf", dir])
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { _ = try? VMMProcess.run(binary: "/bin/rm", ["-rf", dir]) }
        let image = try VMMProcess.temp("outloop-term.bin", outLoop)
        let socket = dir + "/api.sock", snap = dir + "/snap"
        // Before, SIGTERM ended vmm where it stood: no snapshot, the socket file left behind.
        let vmm = Spawned(VMMProcess.binary, ["run", image, "--load-addr", "0x100000", "--serial", "none", "--api-sock", socket,
                                              "--snapshot-on-stop", snap, "--max-seconds", "600"])
        defer { vmm.kill() }
        try #require(eventually { (try? ControlAPITests.ctl([socket, "info"]).status) == 0 }, "the API never answered") // once the vCPUs run
        kill(vmm.pid, SIGTERM)
        let run = vmm.wait()
        #expect(run.status == 22 && run.signal == nil, "status \(run.status): \(run.stderr)")
        #expect(run.stderr.hasPrefix("vmm: stopped by SIGTERM; snapshot saved to \(snap) ("), "\(run.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["snap"], "the socket and no partial snapshot left")

        let restored = Spawned(VMMProcess.binary, ["restore", snap, "--api-sock", socket, "--max-seconds", "600"])
        defer { restored.kill() }
        try #require(eventually { (try? ControlAPITests.ctl([socket, "info"]).status) == 0 }, "the restored API never answered")
        kill(restored.pid, SIGTERM)
        let again = restored.wait()
        #expect(again.signal == SIGTERM, "status \(again.status): \(again.stderr)")
        #expect(again.stderr == "vmm: stopped by SIGTERM\n")
        #expect(access(socket, F_OK) != 0, "the socket is removed")
    }

    @Test("a closed stderr pipe leaves the documented status (it was 141, SIGPIPE) whatever SIGPIPE's inherited action")
    func closedStderr() throws {
        var fds: [Int32] = [-1, -1]
        try #require(pipe(&fds) == 0)
        close(fds[0]) // no reader: the error line's write gets EPIPE (or SIGPIPE)
        defer { close(fds[1]) }
        let pid = try Self.spawn(["run", "/nonexistent/guest.elf"], stderr: fds[1]) { attributes in
            var defaults = sigset_t()
            sigemptyset(&defaults)
            sigaddset(&defaults, SIGPIPE) // this runner may ignore SIGPIPE; a shell does not
            posix_spawnattr_setsigdefault(&attributes, &defaults)
            return POSIX_SPAWN_SETSIGDEF
        }
        let status = Self.reap(pid)
        #expect(status & 0x7f == 0 && (status >> 8) & 0xff == 6, "wait status \(status) (signal \(status & 0x7f), 13 is SIGPIPE)")
    }

    @Test("vmm started with stdin (or stdout, or stderr) closed ends as the guest ends: the signal-stop pipe took fd 0 and the UART read its bytes, so the run never ended")
    func closedStandardDescriptors() throws {
        let guest = VMMProcess.guest("hello64.elf")
        for (closing, output) in [("<&-", true), ("<&- >&-", false), ("2>&-", true)] {
            // timeout: the old launcher never ended (timeout's SIGTERM went to the pipe too).
            let r = try VMMProcess.run(binary: "/usr/bin/timeout", ["-s", "KILL", "60", "/bin/sh", "-c", "exec \"$0\" run \"$1\" \(closing)",
                                                                     VMMProcess.binary, guest])
            #expect(r.status == 1, "\(closing): \(r.stderr)")
            #expect(r.stdout == (output ? "Hello from an ELF64 guest\n" : ""), "\(closing)")
        }
    }

    /// Starts `vmm ARGS` with stdout to /dev/null, stderr to `stderr` (or /dev/null), and
    /// the spawn attributes `configure` sets (it returns their flag).
    static func spawn(_ args: [String], stderr: Int32? = nil, _ configure: (inout posix_spawnattr_t) -> Int32) throws -> pid_t {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(configure(&attributes)))
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        if let stderr { posix_spawn_file_actions_adddup2(&actions, stderr, 2) } else { posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0) }
        var argv = ([VMMProcess.binary] + args).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid = pid_t()
        let spawned = posix_spawn(&pid, VMMProcess.binary, &actions, &attributes, &argv, environ)
        try #require(spawned == 0, "posix_spawn: \(spawned)")
        return pid
    }

    static func reap(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return status
    }

    static func threadNames(_ pid: pid_t) -> [String] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        return tasks.compactMap { try? String(contentsOfFile: "/proc/\(pid)/task/\($0)/comm", encoding: .utf8) }
            .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
    }
}
