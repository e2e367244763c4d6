import Foundation
import Testing

/// `vmm` under a file-size limit (`ulimit -f`): a write past it fails with EFBIG and is
/// reported where it failed. Before, SIGXFSZ's default action ended `vmm` at the first
/// such write: status 153 (killed by signal 25) and no word, and a snapshot left its
/// `DIR.partial-PID` behind with a 0-byte memory.bin. Each `vmm` here is started with
/// SIGXFSZ at its default action, as a shell starts it, whatever this runner ignores.
@Suite("vmm under ulimit -f: EFBIG reported, nothing half-written left", .serialized,
       .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct FileSizeLimitTests {
    /// `vmm ARGS` from `/bin/sh -c "ulimit -f BLOCKS && exec vmm ARGS"`: the limit for vmm alone.
    static func limited(_ blocks: Int, _ args: [String]) -> Spawned {
        Spawned("/bin/sh", ["-c", "ulimit -f \(blocks) && exec \"$0\" \"$@\"", VMMProcess.binary] + args, defaultSignals: [SIGXFSZ])
    }

    static func entries(_ dir: String) -> [String] { (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? ["unreadable"] }

    @Test("--snapshot-on-stop past a 1024-block limit (512 KiB in dash, 1 MiB in bash): status 24, one line naming the file and EFBIG, and neither DIR nor DIR.partial-PID left")
    func snapshotOnStop() throws {
        let folder = try VMMProcess.scratch("fsize", "onstop")
        let image = try VMMProcess.temp("fsize-outloop.bin", outLoop)
        let dir = folder + "/snap"
        let vmm = Self.limited(1024, ["run", image, "--load-addr", "0x100000", "--memory", "64M", "--serial", "none",
                                      "--max-seconds", "0.5", "--snapshot-on-stop", dir])
        defer { vmm.kill() }
        let r = vmm.wait()
        #expect(r.signal == nil && r.status == 24, "status \(r.status), signal \(r.signal.map(String.init) ?? "none"): \(r.stderr)")
        #expect(r.stderr == "vmm: cannot snapshot: ftruncate of \(dir).partial-\(vmm.pid)/memory.bin failed: File too large (errno 27)\n")
        #expect(Self.entries(folder) == [], "left behind: \(Self.entries(folder))")
    }

    @Test("PUT /snapshot/create past the limit: 500 with the file and EFBIG, nothing left, and the VM resumes and stops as usual")
    func snapshotThroughAPI() throws {
        let folder = try VMMProcess.scratch("fsize", "api")
        let image = try VMMProcess.temp("fsize-outloop-api.bin", outLoop)
        let socket = ControlAPITests.socketPath("fsize")
        let vmm = Self.limited(1024, ["run", image, "--load-addr", "0x100000", "--serial", "none", "--api-sock", socket, "--max-seconds", "600"])
        defer { vmm.kill() }
        try #require(eventually { (try? ControlAPITests.ctl([socket, "info"]).status) == 0 }, "the API never answered")
        #expect(try ControlAPITests.ctl([socket, "pause"]).status == 0)
        let dir = folder + "/snap"
        let saved = try ControlAPITests.ctl([socket, "snapshot", dir])
        #expect(saved.status == 5, "\(saved.stdout)\(saved.stderr)")
        #expect(saved.stdout == #"{"fault_message": "snapshot to \#(dir) failed: cannot snapshot: ftruncate of \#(dir).partial-\#(vmm.pid)/memory.bin failed: File too large (errno 27)"}"# + "\n")
        #expect(Self.entries(folder) == [], "left behind: \(Self.entries(folder))")
        #expect(try ControlAPITests.ctl([socket, "resume"]).status == 0)
        #expect(try ControlAPITests.ctl([socket, "info"]).stdout.hasPrefix(#"{"state": "Running""#))
        #expect(try ControlAPITests.ctl([socket, "stop"]).status == 0)
        let run = vmm.wait()
        #expect(run.signal == nil && run.status == 0, "status \(run.status): \(run.stderr)")
        #expect(run.stderr == "")
    }

    @Test("--serial file: (the UART plugin) and --debugcon file: under ulimit -f 0: the guest's status, one line saying the output stopped and why")
    func consoles() throws {
        let folder = try VMMProcess.scratch("fsize", "consoles")
        let serial = folder + "/serial.txt"
        let uart = Self.limited(0, ["run", VMMProcess.guest("hello64.elf"), "--serial", "file:\(serial)"]).wait()
        #expect(uart.signal == nil && uart.status == 1, "status \(uart.status): \(uart.stderr)")
        let lines = uart.stderr.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == 2 && lines[1] == "", "\(uart.stderr)")
        #expect(lines[0].contains(" error vmm: [org.vmmkit.uart16550] com1: console output stopped, the guest's later output was lost: write to fd ")
                && lines[0].hasSuffix(" failed: File too large (errno 27)"), "\(uart.stderr)")
        #expect(FileManager.default.contents(atPath: serial) == Data())

        let debug = folder + "/debugcon.txt"
        let port = Self.limited(0, ["run", VMMProcess.guest("debugcon.elf"), "--debugcon", "file:\(debug)"]).wait()
        #expect(port.signal == nil && port.status == 35, "status \(port.status): \(port.stderr)")
        #expect(port.stdout == "debug console found\n")
        #expect(port.stderr == "vmm: debug console (port 0xe9): output stopped, the guest's later output is lost: writing to \(debug) failed: File too large (errno 27)\n")
    }

    @Test("--vga-text file: and --screendump file: past the limit: the guest's status, one line saying the screen or picture written once at the end is incomplete (not that the guest's later output is lost)")
    func pictures() throws {
        let folder = try VMMProcess.scratch("fsize", "pictures")
        let text = folder + "/screen.txt"
        let screen = Self.limited(0, ["run", VGATextTests.guest, "--vga-text", "file:\(text)"]).wait()
        #expect(screen.signal == nil && screen.status == 0, "status \(screen.status): \(screen.stderr)")
        #expect(screen.stderr == "vmm: VGA text screen: the screen's text is incomplete: writing to \(text) failed: File too large (errno 27)\n")
        #expect(FileManager.default.contents(atPath: text) == Data())

        // 8 blocks (4 or 8 KiB, as the shell counts them) hold the header and some of the 9 KiB of rows.
        let shot = folder + "/shot.ppm"
        let ppm = Self.limited(8, ["run", BochsDisplayGuestTests.guest, "--vga", "std", "--screendump", "file:\(shot)"]).wait()
        #expect(ppm.signal == nil && ppm.status == BochsDisplayGuestTests.done, "status \(ppm.status): \(ppm.stderr)")
        #expect(ppm.stdout == BochsDisplayGuestTests.printed)
        #expect(ppm.stderr == "vmm: screen dump: the picture is incomplete: writing to \(shot) failed: File too large (errno 27)\n")
        let written = FileManager.default.contents(atPath: shot)?.count ?? 0
        #expect(written > 0 && written < 64 * 48 * 3, "\(written) bytes")
    }
}
