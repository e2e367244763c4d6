import Foundation
import GuestPayloads
import Testing

/// `vmm run`'s console (the UART plugin on COM1) as a user sees it: replaced by a
/// `--plugin UART,...` of their own, and writing to a console that falls behind.
@Suite("vmm console: replacing the default, a console that falls behind", .serialized,
       .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct LauncherConsoleTests {
    /// `mov dx, 0x3f8; 1: mov al, 'A'; out dx, al; jmp 1b`: writes forever, never polls LSR.
    static let blindWriter: [UInt8] = [0x66, 0xba, 0xf8, 0x03, 0xb0, 0x41, 0xee, 0xeb, 0xfb]

    @Test("--plugin UART,... and --plugin DebugExit,... replace the defaults of those names: no built-in stand-in clashes with them")
    func replaceDefaults() throws {
        let hello = VMMProcess.guest("hello64.elf")
        let both = try VMMProcess.run(["run", hello, "--plugin", "UART,output=stdout", "--plugin", "DebugExit,port=0xf4"])
        #expect(both.status == 1, "\(both.stderr)")
        #expect(both.stdout == "Hello from an ELF64 guest\n")
        #expect(both.stderr == "")
    }

    @Test("with stdout and stderr on one pipe, the guest's last line comes before the launcher's message about the exit after it")
    func outputBeforeMessage() throws {
        // `mov dx, 0x3f8; mov al, 'A'; out; mov al, 10; out; mov dx, 0x99; out; hlt`:
        // a line, then a write nobody handles (status 18 with --strict-io).
        let image = try VMMProcess.temp("line-then-unhandled.bin",
                                        [0x66, 0xba, 0xf8, 0x03, 0xb0, 0x41, 0xee, 0xb0, 0x0a, 0xee, 0x66, 0xba, 0x99, 0x00, 0xee, 0xf4])
        for _ in 0..<20 {
            let r = Spawned("/bin/sh", ["-c", "exec \"$0\" \"$@\" 2>&1", VMMProcess.binary, "run", image,
                                        "--load-addr", "0x100000", "--strict-io"]).wait()
            #expect(r.status == 18)
            #expect(r.stdout == "A\nvmm: vCPU 0: unhandled PIO write of 0xa (1 byte x1) at port 0x99, vCPU 0 at RIP 0x10000f\n")
        }
    }

    @Test("the built-in COM1 (the UART plugin moved to COM2) on a full disk: the run goes on and the user is told once")
    func builtInConsoleFails() throws {
        let r = try VMMProcess.run(["run", VMMProcess.guest("hello64.elf"), "--serial", "file:/dev/full",
                                    "--plugin", "UART,port=0x2f8,output=none"])
        #expect(r.status == 1, "\(r.stderr)")
        #expect(r.stderr == "vmm: console (COM1): output stopped, the guest's later output is lost: writing to /dev/full failed: No space left on device (errno 28)\n")
    }

    @Test("the built-in COM1 on a FIFO nobody reads: refused in one line, where before the launcher waited for a reader for good")
    func builtInConsoleFIFO() throws {
        let fifo = try HostileInputTests.fifo("builtin-console")
        defer { unlink(fifo) }
        let vmm = Spawned(VMMProcess.binary, ["run", VMMProcess.guest("hello64.elf"), "--serial", "file:\(fifo)",
                                              "--plugin", "UART,port=0x2f8,output=none"])
        defer { vmm.kill() }
        var r: VMMProcess.Result?
        #expect(eventually { r = vmm.wait(tries: 1); return r != nil }, "vmm still waits in open(2)")
        #expect(r?.status == 2)
        #expect(r?.stderr == "vmm: --serial file:\(fifo): cannot open: a FIFO nobody reads (this stand-in console does not wait for a reader; the UART plugin does)\n")
    }

    /// Runs the blind writer with stdout on a pipe left unread until the guest has
    /// written `bytes` (by the API's exit count), then stops it and reads the output.
    /// Before, the vCPU blocked in write(2) once the pipe (64 KiB) was full, and the
    /// handler budget ended the run: status 8, "exceeded its 1.000 s budget".
    static func stallThenStop(_ name: String, uart: String, bytes: Int) throws -> (status: Int32, out: String, err: String) {
        let socket = ControlAPITests.socketPath(name)
        let image = try VMMProcess.temp("blind-writer.bin", blindWriter)
        let vmm = Spawned(VMMProcess.binary, ["run", image, "--load-addr", "0x100000", "--serial", "none",
                                              "--plugin", uart, "--handler-budget", "1",
                                              "--api-sock", socket, "--max-seconds", "600"])
        defer { vmm.kill() }
        var ended: VMMProcess.Result?
        #expect(try eventually {
            ended = vmm.wait(tries: 1)
            return try ended != nil || (ControlAPITests.ctl([socket, "info"]).status == 0 && ControlAPITests.ioExits(socket) > bytes)
        })
        if let ended { return (ended.status, ended.stdout, ended.stderr) }
        #expect(try ControlAPITests.ctl([socket, "stop"]).status == 0)
        let out = vmm.readStdout()
        let r = vmm.wait()
        return (r.status, out, r.stderr)
    }

    @Test("a console nobody reads for a while does not stop the run: the guest goes on, and all its output arrives")
    func stalledConsole() throws {
        let r = try Self.stallThenStop("stall", uart: "UART,output=stdout", bytes: 4 * 65536)
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out.count > 4 * 65536 && r.out.allSatisfy { $0 == "A" })
        #expect(r.err == "", "nothing dropped: the 1 MiB buffer held the backlog")
    }

    @Test("a guest that writes past a full output buffer loses bytes, and the user is told how many at the end")
    func fullBufferDrops() throws {
        let r = try Self.stallThenStop("drops", uart: "UART,output=stdout,txbuffer=4096", bytes: 2 * (65536 + 4096))
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out.count >= 65536 && r.out.allSatisfy { $0 == "A" })
        let line = r.err.split(separator: "\n").first { $0.contains("the console fell behind") }
        #expect(line?.hasSuffix("bytes the guest wrote while the 4096-byte output buffer was full were dropped") == true, "\(r.err)")
        #expect(!r.err.contains("budget"))
    }

    @Test("a console on FIFOs nobody has opened yet: the run starts at once, output waits for its reader, input comes from one writer after another")
    func fifoConsole() throws {
        let output = try HostileInputTests.fifo("console-out"), input = try HostileInputTests.fifo("console-in")
        defer { unlink(output); unlink(input) }
        let socket = ControlAPITests.socketPath("fifo-console")
        let vmm = Spawned(VMMProcess.binary, ["run", try Self.echoImage(), "--load-addr", "0x100000",
                                              "--plugin", "UART,output=file:\(output),input=file:\(input)", "--api-sock", socket])
        defer { vmm.kill() }
        // Before, the UART's init waited in open(2) for a reader, and the 10 s budget ended the run (status 8).
        var ended: VMMProcess.Result?
        #expect(try eventually {
            ended = vmm.wait(tries: 1)
            return try ended != nil || ControlAPITests.ctl([socket, "info"]).status == 0
        })
        try #require(ended == nil, "ended with status \(ended?.status ?? -1): \(ended?.stderr ?? "")")
        let reader = open(output, O_RDONLY | O_CLOEXEC)
        try #require(reader >= 0)
        defer { close(reader) }
        #expect(Self.read(reader, until: "type a line: ").hasSuffix("type a line: "))
        // Two writers, one after the other. Before, the first one's close was the end of input.
        for part in ["vm", "m\r"] {
            let writer = open(input, O_WRONLY | O_CLOEXEC)
            try #require(writer >= 0)
            #expect(write(writer, part, part.utf8.count) == part.utf8.count)
            close(writer)
        }
        #expect(Self.read(reader, until: "you typed: vmm").contains("you typed: vmm"))
        let r = vmm.wait()
        #expect(r.status == 3 << 1 | 1, "\(r.stderr)") // the echo guest's debug-exit code 3
        #expect(r.stderr == "")
    }

    /// The `uart_echo` payload on COM1 as a flat 64-bit image: its helpers pointed at
    /// port 0x3f8 (r12), register shift 0 (r13), PIO (r14).
    static func echoImage() throws -> String {
        var size = 0
        let echo = try #require(guest_payload("uart_echo", &size))
        return try VMMProcess.temp("uart-echo.bin", [0x41, 0xbc, 0xf8, 0x03, 0x00, 0x00, 0x45, 0x31, 0xed, 0x45, 0x31, 0xf6]
            + Array(UnsafeBufferPointer(start: echo, count: size)))
    }

    /// What `fd` gives until `needle` shows, its writers are gone, or 3,000 polls of 10 ms
    /// pass (a guest that never prints it).
    static func read(_ fd: Int32, until needle: String) -> String {
        var got: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        for _ in 0..<3000 where !String(decoding: got, as: UTF8.self).contains(needle) {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 10) >= 0 else { continue }
            if p.revents & Int16(POLLIN) != 0 {
                let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
                guard n > 0 else { break }
                got += buffer[0..<n]
            } else if p.revents & Int16(POLLHUP) != 0 {
                break
            }
        }
        return String(decoding: got, as: UTF8.self)
    }
}
