import Foundation
import Testing
import VMMControl

/// `vmm run --vga-text`: a kernel written for QEMU that prints only into the VGA text
/// buffer (Examples/GuestImages/qemu/vgatext.S, as OSDev's "Bare Bones") is read when
/// the run ends, as a user reads QEMU's window.
@Suite("vmm --vga-text on real KVM", .serialized, .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct VGATextTests {
    static let guest = VMMProcess.guest("vgatext.elf")
    /// What the guest read of the BIOS data area (as SeaBIOS leaves it under QEMU) and the
    /// VGA registers (mode 3's misc, the cursor it moved, the locked CR0), on COM1.
    static let console = """
        vga: BDA: mode 00000003, columns 00000050, rows 00000019, CRTC port 000003D4, COM1 port 000003F8
        vga: misc 00000067, cursor low 00000050, CR0 0000005F
        vga: written

        """
    /// What the guest wrote: ESC and BEL as '?', code page 437's full block as itself,
    /// 21 blank rows, then row 24's last cell.
    static let screen = "Hello, kernel World!\n\n    ctl:?[2J?█x\n" + String(repeating: "\n", count: 21) + String(repeating: " ", count: 79) + "Z\n"

    func run(_ args: [String]) throws -> VMMProcess.Result { try PluginListingTests.run(args, bound: 120) }

    /// `--strict-io`: the VGA registers it reads and writes are devices (a retrace wait on
    /// unassigned I/O, all-ones, would never end).
    @Test("the screen of a kernel that halts with interrupts off is on stdout after its COM1 lines, control bytes as '?', code page 437 as UTF-8; its VGA register accesses are served; without --vga-text no screen")
    func toStdout() throws {
        let r = try run(["run", Self.guest, "--vga-text", "stdio", "--strict-io"])
        #expect(r.stdout == Self.console + Self.screen)
        #expect(r.stderr == "")
        #expect(r.status == 0)
        let plain = try run(["run", Self.guest])
        #expect(plain.stdout == Self.console)
        #expect(plain.status == 0)
    }

    @Test("a screen scrolled in hardware (the CRT controller's start address one row on) is written from there, as QEMU shows it")
    func scrolled() throws {
        let r = try run(["run", Self.guest, "--append", "scrl", "--vga-text", "stdio", "--strict-io"])
        #expect(r.stdout == Self.console + Self.screen.drop { $0 != "\n" }.dropFirst())
        #expect(r.stderr == "")
        #expect(r.status == 0)
    }

    @Test("--vga-text file:PATH and the config file's 'vgaText' key write the screen there; bad input is one line and status 2 (4 in a config), before the guest runs")
    func toFileAndBadInput() throws {
        let dir = try VMMProcess.scratch("vgatext", "file")
        let r = try run(["run", Self.guest, "--vga-text", "file:\(dir)/screen.txt"])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        #expect(r.stdout == Self.console)
        #expect(try String(contentsOfFile: dir + "/screen.txt", encoding: .utf8) == Self.screen)
        let config = dir + "/vm.json"
        try Data("{\"vgaText\": \"file:\(dir)/config.txt\"}".utf8).write(to: URL(fileURLWithPath: config))
        let c = try run(["run", Self.guest, "--config", config])
        #expect(c.status == 0, "stderr: \(c.stderr)")
        #expect(try String(contentsOfFile: dir + "/config.txt", encoding: .utf8) == Self.screen)

        for (args, message) in [(["--vga-text", "file:"], "vmm: --vga-text must be stdio, none or file:PATH, not 'file:'\n"),
                                (["--vga-text", "file:\(dir)/none/screen.txt"],
                                 "vmm: --vga-text file:\(dir)/none/screen.txt: cannot open: No such file or directory\n")] {
            let bad = try run(["run", Self.guest] + args)
            #expect(bad.stderr == message)
            #expect(bad.stdout == "", "the guest ran")
            #expect(bad.status == 2)
        }
        try Data("{\"vgaText\": \"tty\"}".utf8).write(to: URL(fileURLWithPath: config))
        let badConfig = try run(["run", Self.guest, "--config", config])
        #expect(badConfig.stderr.contains("'vgaText' must be \"stdio\", \"none\" or \"file:PATH\", not 'tty'"), "\(badConfig.stderr)")
        #expect(!badConfig.stderr.dropLast().contains("\n"))
        #expect(badConfig.status == 4)
    }

    @Test("`vmm ctl PATH screen` prints a running guest's screen (GET /vm/screen, 501 without a reader); a snapshot holds the screen (it is RAM): vmm restore --vga-text prints it as the restored run ends; the option is not kept")
    func liveAndRestored() throws {
        let dir = try VMMProcess.scratch("vgatext", "restore")
        let snap = dir + "/snap"
        let (vmm, console, socket) = ControlAPITests.served(["run", Self.guest, "--append", "spin", "--vga-text", "none"], in: dir)
        defer { vmm.kill() }
        func printed() -> String { (try? String(contentsOfFile: console, encoding: .utf8)) ?? "" }
        #expect(eventually { printed() == Self.console }, "console: \(printed())")
        let live = try ControlAPITests.ctl([socket, "screen"])
        #expect(live.stdout == Self.screen)
        #expect(live.stderr == "")
        #expect(live.status == 0)
        let raw = try RawHTTP.send(socket, "GET /vm/screen HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        #expect(raw.0 == 200)
        #expect(raw.1.hasPrefix(#"{"text": "Hello, kernel World!\n\n    ctl:?[2J?█x\n\n"#), "\(raw.1)")
        try ControlAPITests.snapshotAndStop(vmm, socket, into: snap)
        // The VGA registers travel too: mode 3's, with the cursor the guest moved.
        let crtc = [0x5f, 0x4f, 0x50, 0x82, 0x55, 0x81, 0xbf, 0x1f, 0x00, 0x4f, 0x0d, 0x0e, 0x00, 0x00, 0x00, 0x50,
                    0x9c, 0x8e, 0x8f, 0x28, 0x1f, 0x96, 0xb9, 0xa3, 0xff].map { String(format: "%02x", $0) }.joined()
        let saved = try String(contentsOfFile: snap + "/device-launcher-devices.state", encoding: .utf8)
        #expect(saved.contains("\nvga 0x67 0x0 0x0 \(crtc)\n") || saved.contains("\nvga 0x67 0x0 0x9 \(crtc)\n"), "\(saved)")
        let r = try run(["restore", snap, "--serial", "stdio", "--vga-text", "stdio", "--max-seconds", "0.2"])
        #expect(r.stdout == Self.screen)
        #expect(r.stderr == "vmm: stopped after --max-seconds 0.2\n")
        #expect(r.status == 16)
        let plain = try run(["restore", snap, "--serial", "stdio", "--max-seconds", "0.2"])
        #expect(plain.stdout == "")
        #expect(plain.status == 16)

        // A controller with no screen reader installed (a VMM that is not a PC): 501.
        let guest = try TestGuest("spin")
        #expect(ControlAPI(VMController(vm: guest.vm)).screen()
            == .init(status: 501, body: #"{"fault_message": "this machine has no text screen"}"#))
    }
}
