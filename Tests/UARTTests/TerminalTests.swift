import Glibc
import GuestPayloads
import Testing
@testable import UART16550

/// Raw terminal input on a pseudo-terminal: raw while the console runs, restored on
/// every way out (stop, normal exit of the launcher, a fatal signal). Serialized: the
/// raw terminal is one per process (`RawTerminal`), and a child started by one test must
/// not inherit another's pseudo-terminal.
@Suite("UART console terminal", .serialized)
struct TerminalTests {
    struct PTY {
        let master: Int32, slave: Int32
        init() throws {
            // posix_openpt/grantpt/unlockpt/ptsname, by hand (Glibc does not export them to Swift).
            master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC)
            try #require(master >= 0)
            var unlock: Int32 = 0, number: UInt32 = 0
            try #require(ioctl(master, 0x4004_5431 /* TIOCSPTLCK */, &unlock) == 0)
            try #require(ioctl(master, 0x8004_5430 /* TIOCGPTN */, &number) == 0)
            slave = open("/dev/pts/\(number)", O_RDWR | O_NOCTTY | O_CLOEXEC)
            try #require(slave >= 0)
        }
        func close() { Glibc.close(slave); Glibc.close(master) }
        var lflag: tcflag_t { var t = termios(); tcgetattr(slave, &t); return t.c_lflag }
        var isRaw: Bool { lflag & tcflag_t(ICANON | ECHO) == 0 }
        var isCooked: Bool { lflag & tcflag_t(ICANON | ECHO) == tcflag_t(ICANON | ECHO) }

        func type(_ text: String) { _ = Array(text.utf8).withUnsafeBytes { write(master, $0.baseAddress, $0.count) } }

        /// Reads the child's output until it contains `needle` (or 60 s pass: a guard
        /// against a hang, not a speed bound).
        func read(until needle: String) -> String {
            var got: [UInt8] = []
            for _ in 0..<600 {
                var p = pollfd(fd: master, events: Int16(POLLIN), revents: 0)
                if poll(&p, 1, 100) > 0 {
                    var buf = [UInt8](repeating: 0, count: 512)
                    let n = buf.withUnsafeMutableBytes { Glibc.read(master, $0.baseAddress, $0.count) }
                    if n > 0 { got += buf[0..<n] } else { break }
                }
                if String(decoding: got, as: UTF8.self).contains(needle) { break }
            }
            return String(decoding: got, as: UTF8.self)
        }
    }

    @Test("the input pump holds the terminal raw, delivers typed bytes, and restores it on stop")
    func pumpRestoresOnStop() throws {
        let pty = try PTY()
        defer { pty.close() }
        #expect(pty.isCooked)
        let uart = UART16550(transmit: { _ in })
        uart.write(4, 0x03) // the guest driver raised DTR|RTS: the host may send
        let pump = try InputPump(fd: pty.slave, into: uart)
        #expect(pty.isRaw)
        #expect(RawTerminal.isActive)
        try pump.start()
        pty.type("ok\r")
        var got: [UInt8] = []
        for _ in 0..<6000 where got.count < 3 {
            if uart.read(5) & 1 != 0 { got.append(uart.read(0)) } else { usleep(1000) }
        }
        #expect(got == Array("ok\r".utf8)) // raw: CR is not turned into LF
        pump.stop()
        #expect(pty.isCooked)
        #expect(!RawTerminal.isActive)
    }

    @Test("a second raw terminal is refused; a non-terminal fd is refused, naming the key")
    func refusals() throws {
        let pty = try PTY()
        defer { pty.close() }
        let first = try RawTerminal(fd: pty.slave)
        #expect(throws: UARTConfigError("uart: key 'input': another UART already holds the terminal in raw mode", key: "input")) {
            _ = try RawTerminal(fd: pty.slave)
        }
        first.restore()
        #expect(pty.isCooked)
        var fds: [Int32] = [0, 0]
        pipe(&fds)
        defer { Glibc.close(fds[0]); Glibc.close(fds[1]) }
        #expect(throws: UARTConfigError("uart: key 'input': fd \(fds[0]) is not a terminal (Inappropriate ioctl for device)", key: "input")) {
            _ = try RawTerminal(fd: fds[0])
        }
    }

    /// Starts `program` (built beside this test binary: uart-console, vmm) on the pty.
    func spawnConsole(_ pty: PTY, _ args: [String] = [], program: String = "uart-console") throws -> pid_t {
        var exe = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &exe, exe.count - 1)
        try #require(n > 0)
        var path = String(decoding: exe.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        path = String(path[..<path.lastIndex(of: "/")!]) + "/" + program
        try #require(access(path, X_OK) == 0, "\(program) is not built at \(path)")
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for fd in 0...2 { posix_spawn_file_actions_adddup2(&actions, pty.slave, Int32(fd)) }
        let argv = ([path] + args).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        // The test runner's threads block signals; the child must start with none
        // blocked and default actions, as from a shell.
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attr, &none)
        posix_spawnattr_setsigdefault(&attr, &all)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var pid = pid_t()
        // The Swift runtime's crash reporter would wait for a key on a terminal (its
        // interactive mode) before the process dies of a fault signal.
        // Settings of our own environment are kept (the sanitizer runs turn it off).
        let backtrace = getenv("SWIFT_BACKTRACE").map { String(cString: $0) + "," } ?? ""
        var env: [UnsafeMutablePointer<CChar>?] = [strdup("SWIFT_BACKTRACE=\(backtrace)interactive=no")]
        var e = environ
        while let entry = e.pointee {
            if strncmp(entry, "SWIFT_BACKTRACE=", 16) != 0 { env.append(strdup(entry)) }
            e += 1
        }
        env.append(nil)
        defer { env.forEach { free($0) } }
        let rc = posix_spawn(&pid, path, &actions, &attr, argv, env)
        try #require(rc == 0)
        return pid
    }

    /// The child's wait status; after 60 s (a guard against a hang, not a speed bound)
    /// it is killed and the failure recorded. With `draining`, what the child writes to
    /// the terminal meanwhile is read and returned (a crash report must not block on a
    /// full pty).
    func wait(_ pid: pid_t, draining pty: PTY? = nil) -> Int32 {
        var ignored: [UInt8] = []
        return wait(pid, draining: pty, into: &ignored)
    }

    /// `wait`, keeping what the child wrote to the terminal in `output`.
    func wait(_ pid: pid_t, draining pty: PTY?, into output: inout [UInt8]) -> Int32 {
        var status: Int32 = 0
        for _ in 0..<6000 {
            if waitpid(pid, &status, WNOHANG) == pid { return status }
            if let pty {
                var p = pollfd(fd: pty.master, events: Int16(POLLIN), revents: 0)
                if poll(&p, 1, 10) > 0 {
                    var buf = [UInt8](repeating: 0, count: 4096)
                    let n = buf.withUnsafeMutableBytes { Glibc.read(pty.master, $0.baseAddress, $0.count) }
                    if n > 0 { output += buf[0..<n] }
                }
            } else {
                usleep(10_000)
            }
        }
        Issue.record("uart-console did not end; killing it")
        kill(pid, SIGKILL)
        waitpid(pid, &status, 0)
        return status
    }

    @Test("uart-console: a line typed at the terminal reaches the guest; the terminal is restored at exit",
          .enabled(if: KVMAvailability.present, KVMAvailability.reason))
    func consoleNormalExit() throws {
        let pty = try PTY()
        defer { pty.close() }
        let pid = try spawnConsole(pty)
        #expect(pty.read(until: "type a line: ").hasSuffix("type a line: "))
        #expect(pty.isRaw)
        pty.type("hi there\r")
        let out = pty.read(until: "you typed: hi there")
        #expect(out.contains("hi there\r\nyou typed: hi there"))
        let status = wait(pid)
        #expect(status & 0x7f == 0 && (status >> 8) & 0xff == 8) // exited with the line length
        #expect(pty.isCooked)
    }

    /// SIGILL is what a Swift runtime trap raises, SIGFPE a plugin's divide by zero.
    @Test("uart-console: a fatal signal while the guest waits for input still restores the terminal",
          .enabled(if: KVMAvailability.present, KVMAvailability.reason),
          arguments: [SIGTERM, SIGILL, SIGFPE, SIGTRAP, SIGPIPE])
    func consoleKilled(signal: Int32) throws {
        // No core files from the faults: the child inherits this limit.
        var noCore = rlimit(rlim_cur: 0, rlim_max: 0)
        var saved = rlimit()
        getrlimit(Int32(RLIMIT_CORE.rawValue), &saved)
        noCore.rlim_max = saved.rlim_max
        setrlimit(Int32(RLIMIT_CORE.rawValue), &noCore)
        defer { setrlimit(Int32(RLIMIT_CORE.rawValue), &saved) }
        let pty = try PTY()
        defer { pty.close() }
        let pid = try spawnConsole(pty)
        _ = pty.read(until: "type a line: ")
        #expect(pty.isRaw)
        kill(pid, signal)
        let status = wait(pid, draining: pty)
        #expect(status & 0x7f == signal) // killed by the signal, as without us
        #expect(pty.isCooked)
    }

    @Test("vmm launcher: its default COM1 (the UART plugin) takes stdin raw, and gives the terminal back at exit",
          .enabled(if: KVMAvailability.present, KVMAvailability.reason))
    func launcherConsole() throws {
        // A flat 64-bit image: point the echo payload's helpers at COM1 (r12 = 0x3f8,
        // r13 = shift 0, r14 = PIO), then the payload itself.
        var size = 0
        let echo = guest_payload("uart_echo", &size)!
        let image: [UInt8] = [0x41, 0xbc, 0xf8, 0x03, 0x00, 0x00, 0x45, 0x31, 0xed, 0x45, 0x31, 0xf6]
            + Array(UnsafeBufferPointer(start: echo, count: size))
        let path = "/tmp/uart-launcher-\(getpid()).bin"
        defer { unlink(path) }
        let f = try #require(fopen(path, "w"))
        fwrite(image, 1, image.count, f)
        fclose(f)
        let pty = try PTY()
        defer { pty.close() }
        let pid = try spawnConsole(pty, ["run", path, "--load-addr", "0x100000"], program: "vmm")
        #expect(pty.read(until: "type a line: ").hasSuffix("type a line: "))
        #expect(pty.isRaw)
        pty.type("vmm\r")
        #expect(pty.read(until: "you typed: vmm").contains("vmm\r\nyou typed: vmm"))
        let status = wait(pid)
        #expect(status & 0x7f == 0 && (status >> 8) & 0xff == (3 << 1 | 1)) // guest code 3, launcher status 7
        #expect(pty.isCooked)
    }

    /// Under seccomp (the launcher's default) the fault hits a filtered vCPU thread, where
    /// the Swift runtime's crash reporter cannot run: the fatal-signal guard names the
    /// signal and the vCPU, lets the UART's terminal restore run, and ends vmm by the signal.
    @Test("vmm launcher: a plugin's divide by zero (a real SIGFPE) ends vmm by that signal, the terminal restored",
          .enabled(if: KVMAvailability.present, KVMAvailability.reason), arguments: [true, false])
    func launcherPluginCrash(seccomp: Bool) throws {
        // Raise RTS, wait for a typed byte (LSR bit 0), then write 0 to the buggy
        // plugin's port 0x531: it divides by it.
        let image: [UInt8] = [0x66, 0xba, 0xfc, 0x03, 0xb0, 0x03, 0xee,             // MCR = DTR|RTS
                              0x66, 0xba, 0xfd, 0x03, 0xec, 0xa8, 0x01, 0x74, 0xfb, // poll LSR.DR
                              0x66, 0xba, 0x31, 0x05, 0x30, 0xc0, 0xee, 0xf4]       // out 0 -> 0x531; hlt
        let path = "/tmp/uart-div0-\(getpid()).bin"
        defer { unlink(path) }
        let f = try #require(fopen(path, "w"))
        fwrite(image, 1, image.count, f)
        fclose(f)
        let root = String(#filePath.split(separator: "/").dropLast(3).joined(separator: "/"))
        let plugin = "/" + root + "/.build/plugins/fixtures/libDIV0.so"
        try #require(access(plugin, R_OK) == 0, "\(plugin) is not built (scripts/build-plugins)")
        var noCore = rlimit(), saved = rlimit()
        getrlimit(Int32(RLIMIT_CORE.rawValue), &saved)
        noCore.rlim_max = saved.rlim_max
        setrlimit(Int32(RLIMIT_CORE.rawValue), &noCore)
        defer { setrlimit(Int32(RLIMIT_CORE.rawValue), &saved) }
        let pty = try PTY()
        defer { pty.close() }
        let pid = try spawnConsole(pty, ["run", path, "--load-addr", "0x100000", "--plugin", plugin] + (seccomp ? [] : ["--no-seccomp"]),
                                   program: "vmm")
        // The UART plugin takes the terminal raw at load; wait for that, then type.
        for _ in 0..<6000 where !pty.isRaw { usleep(10_000) }
        #expect(pty.isRaw)
        pty.type("x")
        var output: [UInt8] = []
        let status = wait(pid, draining: pty, into: &output)
        let text = String(decoding: output, as: UTF8.self)
        #expect(status & 0x7f == SIGFPE, "wait status \(status), output \(text.debugDescription)")
        #expect(pty.isCooked)
        let guardLine = "vmm: vCPU 0: fatal signal SIGFPE (integer divide by zero) at pc 0x"
        #expect(text.contains(guardLine) == seccomp)
        #expect(!text.contains("seccomp: vCPU 0 made system call")) // nothing refused on the way out
    }
}
