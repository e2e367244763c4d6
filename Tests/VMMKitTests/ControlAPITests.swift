import Foundation
import Testing

/// `vmm run --api-sock` as a child process, driven by `vmm ctl` and by raw HTTP requests.
@Suite("control API over a Unix socket on real KVM", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct ControlAPITests {
    static func socketPath(_ name: String) -> String { NSTemporaryDirectory() + "vmm-api-\(getpid())-\(name).sock" }

    /// `vmm run` on the out-loop guest, serving the API on `socket`; --max-seconds only
    /// guards against a hang, unless a test gives its own.
    static func launch(_ socket: String, extra: [String] = [], maxSeconds: String = "600") throws -> Spawned {
        let image = try VMMProcess.temp("outloop.bin", outLoop)
        return Spawned(VMMProcess.binary, ["run", image, "--load-addr", "0x100000", "--serial", "none", "--api-sock", socket, "--max-seconds", maxSeconds] + extra)
    }

    /// `launch` from `/bin/sh -c "SHELL && exec vmm run …"`: a umask or a limit for vmm alone.
    static func launch(_ socket: String, after shell: String, image name: String) throws -> Spawned {
        let image = try VMMProcess.temp(name, outLoop)
        return Spawned("/bin/sh", ["-c", "\(shell) && exec \"$0\" \"$@\"", VMMProcess.binary, "run", image, "--load-addr", "0x100000",
                                   "--serial", "none", "--api-sock", socket, "--max-seconds", "600"])
    }

    /// `vmm ctl ARGS` to completion. posix_spawn, not Foundation's Process: its dispatch
    /// threads and fds outlive the call and would disturb the suites that count them.
    static func ctl(_ args: [String]) throws -> VMMProcess.Result { Spawned(VMMProcess.binary, ["ctl"] + args).wait() }

    /// `vmm` with `args`, serving the control API on `dir`/api.sock, COM1 to
    /// `dir`/console.txt, bounded by --max-seconds 120 (a test that fails leaves no VMM).
    static func served(_ args: [String], in dir: String) -> (vmm: Spawned, console: String, socket: String) {
        let console = dir + "/console.txt", socket = dir + "/api.sock"
        let vmm = Spawned(VMMProcess.binary, args + ["--serial", "file:\(console)", "--api-sock", socket, "--max-seconds", "120"])
        return (vmm, console, socket)
    }

    /// Pauses the VMM `vmm` that serves `socket`, snapshots it into `snap` and stops it,
    /// each command answered with status 0, then waits for its exit, status 0.
    static func snapshotAndStop(_ vmm: Spawned, _ socket: String, into snap: String,
                                sourceLocation: SourceLocation = #_sourceLocation) throws {
        for command in [["pause"], ["snapshot", snap], ["stop"]] {
            let r = try ctl([socket] + command)
            #expect(r.status == 0, "\(command): \(r.stderr)", sourceLocation: sourceLocation)
        }
        #expect(vmm.wait().status == 0, sourceLocation: sourceLocation)
    }

    /// The guest's progress: the io exits the API reports.
    static func ioExits(_ socket: String, kind: String = "io") throws -> Int {
        let r = try ctl([socket, "metrics"])
        #expect(r.status == 0, "metrics: \(r.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        return ((json?["exits_by_kind"] as? [String: Any])?[kind] as? Int) ?? 0
    }

    @Test("pause stops the guest's progress, resume restarts it, metrics count it, stop ends the run with status 0")
    func pauseResumeStop() throws {
        let socket = Self.socketPath("run")
        let vmm = try Self.launch(socket)
        defer { vmm.kill() }
        #expect(eventually { (try? Self.ctl([socket, "info"]).status) == 0 })

        let info = try Self.ctl([socket, "info"])
        #expect(info.stdout.hasPrefix(#"{"state": "Running", "vcpu_count": 1, "vcpus": [{"id": 0, "state": "Running"}], "memory": [{"name": "ram", "guest_address": 0, "size": 134217728"#))
        #expect(try eventually { try Self.ioExits(socket) > 100 })

        let pause = try Self.ctl([socket, "pause"])
        #expect(pause.status == 0 && pause.stdout == "" && pause.stderr == "")
        #expect(try Self.ctl([socket, "info"]).stdout.hasPrefix(#"{"state": "Paused""#))
        let paused = try Self.ioExits(socket)
        for _ in 0..<10 { #expect(try Self.ioExits(socket) == paused) } // each call takes longer than many guest exits

        #expect(try Self.ctl([socket, "resume"]).status == 0)
        #expect(try eventually { try Self.ioExits(socket) > paused + 100 })

        // A snapshot needs a paused VM; then it is written with every plugin's state.
        let dir = "/tmp/vmm-api-snapshot-\(getpid())"
        let running = try Self.ctl([socket, "snapshot", dir])
        #expect(running.status == 4)
        #expect(running.stdout.contains("the VM must be paused before a snapshot"))
        #expect(access(dir, F_OK) != 0)
        #expect(try Self.ctl([socket, "pause"]).status == 0)
        let saved = try Self.ctl([socket, "snapshot", dir])
        #expect(saved.status == 0, "\(saved.stdout)\(saved.stderr)")
        #expect(access(dir + "/manifest", F_OK) == 0)
        let again = try Self.ctl([socket, "snapshot", dir])
        #expect(again.status == 5, "an existing directory is never overwritten")
        #expect(try Self.ctl([socket, "resume"]).status == 0)
        _ = try? VMMProcess.run(binary: "/bin/rm", ["-rf", dir])

        let stop = try Self.ctl([socket, "stop"])
        #expect(stop.status == 0)
        let run = vmm.wait()
        #expect(run.status == 0)
        #expect(run.stderr == "")
        #expect(access(socket, F_OK) != 0, "the socket is removed on exit")

        let gone = try Self.ctl([socket, "info"])
        #expect(gone.status == 3)
        #expect(gone.stderr == "vmm ctl: \(socket): cannot connect: No such file or directory\n")
    }

    @Test("hostile requests get a 4xx and a fault_message; the VM keeps running")
    func badRequests() throws {
        let socket = Self.socketPath("bad")
        let vmm = try Self.launch(socket)
        defer { vmm.kill() }
        #expect(eventually { (try? Self.ctl([socket, "info"]).status) == 0 })

        func send(_ method: String, _ path: String, _ body: String) throws -> (Int, String) {
            let r = try RawHTTP.send(socket, "\(method) \(path) HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
            return r
        }
        #expect(try send("PATCH", "/vm", #"{"state": "#) == (400, #"{"fault_message": "malformed JSON body at byte 10: unterminated object"}"#))
        #expect(try send("PATCH", "/vm", #"{"state": "Frozen"}"#) == (400, #"{"fault_message": "field 'state' must be \"Paused\" or \"Resumed\", not \"Frozen\""}"#))
        #expect(try send("PUT", "/actions", #"{"action_type": "Stop", "force": "yes"}"#) == (400, #"{"fault_message": "unknown field 'force'"}"#))
        #expect(try send("PUT", "/actions", "") == (400, #"{"fault_message": "missing JSON body with 'action_type'"}"#))
        #expect(try send("PUT", "/actions", String(repeating: " ", count: 5000)).0 == 413)
        #expect(try send("GET", "/nope", "") == (404, #"{"fault_message": "no such endpoint: GET /nope"}"#))
        #expect(try send("DELETE", "/vm", "") == (405, #"{"fault_message": "DELETE is not allowed on /vm (allowed: GET, PATCH)"}"#))
        let garbage = try RawHTTP.send(socket, "NOT HTTP AT ALL\r\n\r\n")
        #expect((400..<500).contains(garbage.0))
        // A chunked body with a chunk size that is not hex, or bigger than what follows: a
        // malformed request (bare 400), not a body over 4 KiB (each was answered 413).
        for chunks in ["zz\r\n{}\r\n0\r\n\r\n", "15\r\n{\"state\": \"Paused\"}\r\n0\r\n\r\n"] {
            let r = try RawHTTP.send(socket, "PATCH /vm HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks)
            #expect(r.0 == 400, "\(chunks.debugDescription): \(r)")
        }
        #expect(try Self.ctl([socket, "bogus"]).status == 2)
        #expect(try Self.ctl([socket, "info"]).stdout.hasPrefix(#"{"state": "Running""#))
        #expect(try Self.ctl([socket, "stop"]).status == 0)
        #expect(vmm.wait().status == 0)
    }

    @Test("the socket is its owner's only (no group or other bits) even under umask 000")
    func ownerOnly() throws {
        let socket = Self.socketPath("umask")
        let vmm = try Self.launch(socket, after: "umask 000", image: "outloop3.bin")
        defer { vmm.kill() }
        try #require(eventually { (try? Self.ctl([socket, "info"]).status) == 0 }, "the API never answered")
        var st = stat()
        try #require(lstat(socket, &st) == 0)
        #expect(st.st_mode & S_IFMT == S_IFSOCK && st.st_mode & 0o077 == 0, "mode \(String(st.st_mode & 0o777, radix: 8))")
        #expect(try Self.ctl([socket, "stop"]).status == 0)
        #expect(vmm.wait().status == 0)
    }

    @Test("a client holding an unfinished request does not keep the run from ending")
    func unfinishedRequest() throws {
        let socket = Self.socketPath("unfinished")
        let vmm = try Self.launch(socket, maxSeconds: "1")
        defer { vmm.kill() }
        try #require(eventually { (try? Self.ctl([socket, "info"]).status) == 0 }, "the API never answered")
        // A header promising 100 bytes of body, and one byte of it; the connection stays open.
        let fd = try #require(RawHTTP.connect(socket))
        defer { close(fd) }
        let request = Array("PUT /actions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{".utf8)
        _ = request.withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) }
        // --max-seconds ends the run; the process must end too (it waited for this client).
        let ended = vmm.wait(tries: 30_000)
        #expect(ended?.status == 16, "\(ended.map { "status \($0.status): \($0.stderr)" } ?? "still running 60 s later")")
    }

    @Test("a request whose body arrives after the run began to stop never reaches the closing VM: 503 or no answer, and the run ends as stopped (it crashed at exit)")
    func lateRequest() throws {
        let socket = Self.socketPath("late")
        let vmm = try Self.launch(socket)
        defer { vmm.kill() }
        try #require(eventually { (try? Self.ctl([socket, "info"]).status) == 0 }, "the API never answered")
        let fd = try #require(RawHTTP.connect(socket))
        defer { close(fd) }
        let body = Array(#"{"state": "Paused"}"#.utf8)
        RawHTTP.sendNow(fd, Array("PATCH /vm HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body.prefix(5))
        #expect(try Self.ctl([socket, "stop"]).status == 0)
        // The server removes the socket when it stops waiting for clients; the VM closes next.
        #expect(eventually { access(socket, F_OK) != 0 })
        RawHTTP.sendNow(fd, Array(body.dropFirst(5)))
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var answer = [UInt8](repeating: 0, count: 4096)
        let n = answer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
        let text = String(decoding: answer.prefix(max(n, 0)), as: UTF8.self)
        #expect(text.isEmpty || text.hasPrefix("HTTP/1.1 503"), "\(text)")
        let ended = vmm.wait(tries: 30_000)
        #expect(ended?.status == 0, "\(ended.map { "status \($0.status): \($0.stderr)" } ?? "still running 60 s later")")
    }

    @Test("idle clients past the descriptor limit: the server takes at most its share, closes idle ones, and vmm lives on")
    func idleClientsPastTheFdLimit() throws {
        let socket = Self.socketPath("idle")
        // 48 descriptors: the VM's own and 40 idle clients need more. Before, the server
        // accepted until none was left, and libdispatch then killed vmm (SIGILL, status
        // 132) as it could not open /proc/<tid>/stat; or a stop was lost.
        let vmm = try Self.launch(socket, after: "ulimit -n 48", image: "outloop4.bin")
        defer { vmm.kill() }
        try #require(eventually { (try? Self.ctl([socket, "info"]).status) == 0 }, "the API never answered")
        let idle = (0..<40).compactMap { _ in RawHTTP.connect(socket) }
        defer { idle.forEach { close($0) } }
        #expect(idle.count == 40)
        // The server closes a connection that sent no request (an end of file here).
        var polls = idle.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        #expect(eventually(tries: 30_000) { poll(&polls, nfds_t(polls.count), 0) > 0 }, "no idle client was closed")
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(vmm.pid)/fd").count) ?? 0
        #expect(fds > 0 && fds < 48, "vmm holds \(fds) descriptors of 48")
        idle.forEach { shutdown($0, Int32(SHUT_RDWR)) }
        let info = try Self.ctl([socket, "info"])
        #expect(info.status == 0, "info: \(info.stderr)")
        #expect(try Self.ctl([socket, "stop"]).status == 0)
        let run = vmm.wait()
        #expect(run.status == 0 && run.signal == nil, "status \(run.status): \(run.stderr)")
        #expect(run.stderr == "")
    }

    @Test("clients that trickle a request's body, or pipeline requests and never read the answers, cannot hold the API")
    func slowClients() throws {
        let socket = Self.socketPath("slow")
        let vmm = try Self.launch(socket)
        defer { vmm.kill() }
        try #require(eventually { (try? Self.ctl([socket, "info"]).status) == 0 }, "the API never answered")
        // 17 clients, one more than the slots and all ahead of ctl in the backlog: each sends
        // a head, then a byte of its body every 100 ms. Before, a request in flight was never
        // idle, so the slots stayed taken and info failed after ctl's 30 s ("no complete answer").
        // 4000 bytes, within the limit: a larger body is refused from its head at once.
        let trickling = (0..<17).compactMap { _ in RawHTTP.connect(socket) }
        defer { trickling.forEach { close($0) } }
        #expect(trickling.count == 17)
        for fd in trickling { RawHTTP.sendNow(fd, Array("PATCH /vm HTTP/1.1\r\nHost: vmm\r\nContent-Length: 4000\r\n\r\n".utf8)) }
        let stop = Flag()
        let trickler = spawn {
            while !stop.isSet {
                for fd in trickling { RawHTTP.sendNow(fd, [0x20]) }
                usleep(100_000)
            }
        }
        let info = try Self.ctl([socket, "info"])
        stop.set()
        pthread_join(trickler, nil)
        #expect(info.status == 0, "info past trickling clients: \(info.stderr)")
        // A client that pipelines 4,000 requests and reads nothing: the answers fill its
        // socket and the server's writes stall. Before, that connection was never closed.
        let deaf = try #require(RawHTTP.connect(socket))
        defer { close(deaf) }
        RawHTTP.sendNow(deaf, Array(String(repeating: "GET /vm HTTP/1.1\r\nHost: vmm\r\n\r\n", count: 4000).utf8))
        var hangup = pollfd(fd: deaf, events: 0, revents: 0) // POLLHUP comes unasked once the server closes
        #expect(eventually { poll(&hangup, 1, 0) > 0 && hangup.revents & Int16(POLLHUP) != 0 },
                "a connection that read none of its answers was never closed")
        #expect(try Self.ctl([socket, "info"]).status == 0)
        #expect(try Self.ctl([socket, "stop"]).status == 0)
        let run = vmm.wait()
        #expect(run.status == 0 && run.signal == nil, "status \(run.status): \(run.stderr)")
        #expect(run.stderr == "")
    }

    /// A snapshot's writing held in fsync (an LD_PRELOAD fixture) for as long as the test
    /// likes. The handler ran under the controller's lock on the Swift concurrency pool's
    /// threads (as many as the cores): `metrics` waited for the whole snapshot, and with
    /// it holding the other thread, so did `stop` and even `info`.
    @Test("while a snapshot is being written, info, metrics and stop are answered at once, a second snapshot and a resume are refused, and the run ends once it is written")
    func requestsDuringSnapshot() throws {
        let socket = Self.socketPath("slowsnap")
        let hold = NSTemporaryDirectory() + "vmm-fsync-hold-\(getpid())", dir = NSTemporaryDirectory() + "vmm-api-slowsnap-\(getpid())"
        let preload = VMMProcess.root.appendingPathComponent(".build/plugins/fixtures/libFsyncHold.so").path
        try #require(FileManager.default.createFile(atPath: hold, contents: nil))
        defer {
            unlink(hold)
            unlink(hold + ".waiting")
            try? FileManager.default.removeItem(atPath: dir)
        }
        let image = try VMMProcess.temp("outloop-slowsnap.bin", outLoop)
        let vmm = Spawned("/usr/bin/env", ["LD_PRELOAD=\(preload)", "VMM_TEST_FSYNC_HOLD=\(hold)", VMMProcess.binary, "run", image,
                                           "--load-addr", "0x100000", "--serial", "none", "--api-sock", socket, "--max-seconds", "300"])
        defer { vmm.kill() }
        #expect(eventually { (try? Self.ctl([socket, "info"]).status) == 0 })
        #expect(try Self.ctl([socket, "pause"]).status == 0)
        let snapshot = Spawned(VMMProcess.binary, ["ctl", socket, "snapshot", dir])
        #expect(eventually { access(hold + ".waiting", F_OK) == 0 }, "the snapshot reached its first fsync")
        // Each answered while the snapshot is held (the client gives up after 30 s: status 3).
        #expect(try Self.ctl([socket, "info"]).stdout.hasPrefix(#"{"state": "Paused""#))
        #expect(try Self.ctl([socket, "metrics"]).status == 0)
        let second = try Self.ctl([socket, "snapshot", dir + "-2"])
        #expect(second.status == 4 && second.stdout.contains("a snapshot is being written"), "\(second.stdout)\(second.stderr)")
        let resume = try Self.ctl([socket, "resume"])
        #expect(resume.status == 4 && resume.stdout.contains("a snapshot is being written"), "\(resume.stdout)\(resume.stderr)")
        #expect(try Self.ctl([socket, "stop"]).status == 0)
        #expect(snapshot.wait(tries: 1) == nil, "the snapshot is still held")
        unlink(hold)
        let saved = snapshot.wait()
        #expect(saved.status == 0, "\(saved.stdout)\(saved.stderr)")
        #expect(access(dir + "/manifest", F_OK) == 0)
        let run = vmm.wait()
        #expect(run.status == 0 && run.stderr == "", "\(run.stderr)")
    }

    /// KVM's in-kernel PIT runs on while the vCPUs are paused and, in its reinject mode,
    /// keeps every tick the guest does not take: they all came right after the resume
    /// (111 in the 0.1 s after a 1 s pause at 100 Hz). QEMU writes the PIT's state back
    /// on resume, which drops them; so does `VMController.resume`.
    @Test("after a pause the guest's PIT ticks at its rate again, with no burst of the ticks the pause held back (as under QEMU)")
    func pitAcrossPause() throws {
        let socket = Self.socketPath("pit")
        let out = NSTemporaryDirectory() + "vmm-pit-\(getpid()).out"
        defer { unlink(out) }
        let vmm = Spawned(VMMProcess.binary, ["run", VMMProcess.guest("pitpause.elf"), "--serial", "file:\(out)",
                                              "--api-sock", socket, "--max-seconds", "60"]) // a bound if a step fails
        defer { vmm.kill() }
        #expect(eventually { (try? String(contentsOfFile: out, encoding: .utf8))?.contains("pit: ticking") == true })
        #expect(try Self.ctl([socket, "pause"]).status == 0)
        // The key tells the guest to count from the resume on; the pause's length is the
        // stimulus: 200 ticks held back at 100 Hz.
        #expect(try Self.ctl([socket, "sendkey", "a"]).status == 0)
        usleep(2_000_000)
        #expect(try Self.ctl([socket, "resume"]).status == 0)
        let run = vmm.wait()
        #expect(run.status == (0x23 << 1) | 1, "\(run.stderr)")
        let text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        let prefix = "pit: ticks in the 0.1 s after the key: "
        let ticks = text.split(separator: "\n").first { $0.hasPrefix(prefix) }.flatMap { Int($0.dropFirst(prefix.count), radix: 16) }
        // About 10 (11 with the tick that ends the window); a loaded host that holds the
        // vCPU back adds its own catch-up ticks, never the 200.
        #expect(ticks.map { (8...50).contains($0) } == true, "\(text)")
    }

    @Test("an --api-sock path that exists and is not a socket, or whose folder is missing or a file, is refused (status 2, 4 from a config file) and left alone")
    func notASocket() throws {
        let path = try VMMProcess.temp("not-a-socket", Array("keep me".utf8))
        let image = try VMMProcess.temp("outloop2.bin", outLoop)
        let r = Spawned(VMMProcess.binary, ["run", image, "--load-addr", "0x100000", "--api-sock", path]).wait()
        #expect(r.status == 2)
        #expect(r.stderr == "vmm: --api-sock \(path): exists and is not a socket; refusing to replace it\n")
        // From a config file: status 4 naming the file's key, not a flag the user never gave.
        let config = try VMMProcess.temp("api-config.json", Array(#"{"image": "\#(image)", "loadAddr": "0x100000", "apiSock": "\#(path)"}"#.utf8))
        let c = Spawned(VMMProcess.binary, ["run", "--config", config]).wait()
        #expect(c.status == 4)
        #expect(c.stderr == "vmm: \(config): 'apiSock' \(path): exists and is not a socket; refusing to replace it\n", "\(c.stderr)")
        let long = Spawned(VMMProcess.binary, ["run", image, "--load-addr", "0x100000", "--api-sock", "/tmp/" + String(repeating: "s", count: 200)]).wait()
        #expect(long.status == 2)
        #expect(long.stderr == "vmm: --api-sock must be a path of 1 to 107 bytes (a Unix socket address), not 205\n", "\(long.stderr)")
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "keep me")
        // A folder that does not exist or is a file: the path's fault as the file above is,
        // status 2 (4 from the file) before the guest prints a word. It was status 20,
        // "host error", from bind(2): "cannot serve: bind: No such file or directory (errno 2)".
        let hello = VMMProcess.guest("hello64.elf")
        for (socket, folder, why) in [(path + ".missing/api.sock", path + ".missing", "No such file or directory"),
                                      (path + "/api.sock", path, "Not a directory")] {
            let bind = Spawned(VMMProcess.binary, ["run", hello, "--api-sock", socket]).wait()
            #expect(bind.status == 2 && bind.stdout == "", "status \(bind.status), stdout \(bind.stdout.debugDescription)")
            #expect(bind.stderr == "vmm: --api-sock \(socket): cannot create the socket in \(folder): \(why)\n", "\(bind.stderr)")
        }
        let missing = try VMMProcess.temp("api-config-missing.json", Array(#"{"image": "\#(hello)", "apiSock": "/nonexistent/api.sock"}"#.utf8))
        let m = Spawned(VMMProcess.binary, ["run", "--config", missing]).wait()
        #expect(m.status == 4 && m.stdout == "", "status \(m.status), stdout \(m.stdout.debugDescription)")
        #expect(m.stderr == "vmm: \(missing): 'apiSock' /nonexistent/api.sock: cannot create the socket in /nonexistent: No such file or directory\n")
    }
}
