import Foundation
import Testing

/// QEMU's `-vga std` graphics as `vmm run --vga std`: a driver written as for QEMU
/// (Examples/GuestImages/qemu/vbe.S) finds the display on PCI, sizes its framebuffer BAR,
/// sets a mode through the Bochs DISPI ports and draws; `--screendump` writes what it
/// drew as a PPM; the picture and the mode survive a snapshot and a restore in a new process.
@Suite("vmm --vga std (the Bochs VBE display) on real KVM", .serialized, .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct BochsDisplayGuestTests {
    static let guest = VMMProcess.guest("vbe.elf")
    static let done: Int32 = (0x16 << 1) | 1
    static let printed = """
        display: devfn 10, bar0 FD000008, sized FF000008, moved FD000008
        dispi: id B0C5, memory 64k x 0100, maxima 3E80x2EE0x0020, virtual width 0000
        clamped: 3E80x0030x0020, virtual width 3E80
        mode: 0040x0030x0020, virtual width 0040
        drawn

        """

    func run(_ args: [String]) throws -> VMMProcess.Result { try PluginListingTests.run(args, bound: 120) }

    /// vbe.elf under `--vga std`, spinning once it has drawn (waited for on its console),
    /// and its control socket; both files in `dir`.
    static func spinning(_ dir: String) -> (Spawned, socket: String) {
        let (vmm, console, socket) = ControlAPITests.served(["run", guest, "--vga", "std", "--append", "spin"], in: dir)
        #expect(eventually { KeyboardTests.printed(console) == printed + "spinning\n" }, "console: \(KeyboardTests.printed(console))")
        return (vmm, socket)
    }

    /// The pixels of a P6 picture of `width` x `height`, as "rrggbb" strings; nil when the
    /// file is not one.
    static func pixels(_ path: String, width: Int, height: Int) -> [String]? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        let header = Array("P6\n\(width) \(height)\n255\n".utf8)
        let bytes = Array(data)
        guard bytes.starts(with: header), bytes.count == header.count + width * height * 3 else { return nil }
        return stride(from: header.count, to: bytes.count, by: 3).map { i in
            bytes[i..<i + 3].map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
        }
    }

    /// What vbe.elf draws at (x, y) of its 64 x 48 mode.
    static func drawn(_ x: Int, _ y: Int) -> String {
        switch (x < 32, y < 24) {
        case (true, true): "ff0000"
        case (false, true): "00ff00"
        case (true, false): "0000ff"
        case (false, false): "ffffff"
        }
    }

    /// What differs between the picture at `path` and what vbe.elf draws (the first pixel
    /// that does), or nil: one line, not two arrays of 3072 pixels.
    static func mismatch(_ path: String) -> String? {
        guard let p = pixels(path, width: 64, height: 48) else { return "\(path) is not a 64x48 P6 picture" }
        for y in 0..<48 {
            for x in 0..<64 where p[y * 64 + x] != drawn(x, y) { return "pixel (\(x), \(y)) is \(p[y * 64 + x]), not \(drawn(x, y))" }
        }
        return nil
    }

    @Test("the guest finds the display on PCI (BAR 0 at 0xfd000000, 16 MiB, not movable), reads the DISPI id and maxima, is clamped past them, sets 64x48x32 and draws; --screendump writes those pixels")
    func draws() throws {
        let dir = try VMMProcess.scratch("vbe", "draw")
        let shot = dir + "/shot.ppm"
        // --strict-io: every port the driver touches is a device's.
        let r = try run(["run", Self.guest, "--vga", "std", "--screendump", "file:\(shot)", "--strict-io"])
        #expect(r.stdout == Self.printed)
        #expect(r.stderr == "")
        #expect(r.status == Self.done)
        #expect(Self.mismatch(shot) == nil)
        // A PCI scan lists the display after PIIX3's functions.
        let scan = try run(["run", VMMProcess.guest("pciscan.elf"), "--vga", "std"])
        #expect(scan.stdout.hasPrefix("00:00.0 8086:1237 class 060000\n00:01.0 8086:7000 class 060100\n00:01.1 8086:7010 class 010100\n"
            + "00:02.0 1234:1111 class 030000\nfunctions: 4\n"), "\(scan.stdout)")
    }

    @Test("8 bits a pixel through the DAC: the guest writes palette entries 1-4 (6 bits a component), reads one back, draws with them; --screendump shows the palette's colours")
    func palette() throws {
        let dir = try VMMProcess.scratch("vbe", "palette")
        let shot = dir + "/shot.ppm"
        let r = try run(["run", Self.guest, "--vga", "std", "--append", "pal", "--screendump", "file:\(shot)", "--strict-io"])
        #expect(r.stdout == Self.printed.replacingOccurrences(of: "mode: 0040x0030x0020, virtual width 0040\n",
                                                                with: "mode: 0040x0030x0008, virtual width 0040\ndac: state 03, entry 4 3F3F3F\n"))
        #expect(r.stderr == "")
        #expect(r.status == Self.done)
        #expect(Self.mismatch(shot) == nil)
    }

    @Test("without --vga std (config vga \"text\", the default) there is no display: not on PCI, the DISPI ports unassigned")
    func absentByDefault() throws {
        let dir = try VMMProcess.scratch("vbe", "absent")
        let config = dir + "/vm.json"
        try #"{"image": "\#(Self.guest)", "vga": "text"}"#.write(toFile: config, atomically: true, encoding: .utf8)
        for args in [["run", Self.guest], ["run", "--config", config]] {
            let r = try run(args)
            #expect(r.stdout == "display: none on PCI\ndispi: id FFFF, memory 64k x FFFF, maxima FFFFxFFFFxFFFF, virtual width FFFF\n", "\(args)")
            #expect(r.status == Self.done, "\(args): \(r.stderr)")
        }
    }

    @Test("--screendump (flag or config key, with --vga std or without) writes nothing for a display still in text mode, saying why; --vga takes std or text")
    func screendumpRefusals() throws {
        let dir = try VMMProcess.scratch("vbe", "refusals")
        let shot = dir + "/shot.ppm"
        let bad = try run(["run", Self.guest, "--vga", "svga"])
        #expect(bad.status == 2)
        #expect(bad.stderr == "vmm: --vga must be std or text, not 'svga'\n")
        // hello64.elf never sets a mode: nothing to picture.
        let hello = VMMProcess.guest("hello64.elf"), config = dir + "/vm.json"
        try #"{"image": "\#(hello)", "screendump": "file:\#(shot)"}"#.write(toFile: config, atomically: true, encoding: .utf8)
        for args in [["run", hello, "--vga", "std", "--screendump", "file:\(shot)"], ["run", hello, "--screendump", "file:\(shot)"],
                     ["run", "--config", config]] {
            let text = try run(args)
            #expect(text.stderr == "vmm: --screendump: nothing written: the display is in VGA text mode (see --vga-text)\n", "\(args)")
            #expect(FileManager.default.contents(atPath: shot)?.isEmpty == true, "\(args)")
        }
    }

    @Test("`vmm ctl PATH screendump FILE` (PUT /vm/screendump) writes the running guest's picture (its text screen 409: the mode set made the VGA's a graphics mode); 409 while the display is in text mode (with --vga std or without), 400 for a file it cannot write")
    func live() throws {
        let dir = try VMMProcess.scratch("vbe", "live")
        let shot = dir + "/live.ppm"
        let (vmm, socket) = Self.spinning(dir)
        defer { vmm.kill() }
        let r = try ControlAPITests.ctl([socket, "screendump", shot])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(Self.mismatch(shot) == nil)
        // The mode set reprogrammed the VGA as QEMU's does: no text screen.
        let screen = try ControlAPITests.ctl([socket, "screen"])
        #expect(screen.stdout == #"{"fault_message": "the display is in a graphics mode (see --screendump)"}"# + "\n")
        #expect(screen.status == 4, "\(screen.stderr)")
        let unwritable = try ControlAPITests.ctl([socket, "screendump", dir + "/no/such/dir/x.ppm"])
        #expect(unwritable.status == 4)
        #expect(unwritable.stdout == #"{"fault_message": "cannot open \#(dir)/no/such/dir/x.ppm: No such file or directory"}"# + "\n")
        // A FIFO a client holds open and never reads, a directory, a device: refused, not
        // written (the write would have blocked the API and the VMM's exit for ever). A FIFO
        // nobody reads and a socket the same words (they were "No such device or address").
        let fifo = dir + "/fifo", unread = dir + "/unread"
        #expect(mkfifo(fifo, 0o600) == 0 && mkfifo(unread, 0o600) == 0)
        let reader = open(fifo, O_RDONLY | O_NONBLOCK)
        defer { close(reader) }
        for (path, kind) in [(fifo, "a FIFO"), (unread, "a FIFO"), (socket, "a socket"), ("/dev/null", "a character device")] {
            let refused = try ControlAPITests.ctl([socket, "screendump", path])
            #expect(refused.status == 4)
            #expect(refused.stdout == #"{"fault_message": "cannot write \#(path): not a regular file (\#(kind))"}"# + "\n")
        }
        _ = try ControlAPITests.ctl([socket, "stop"])
        #expect(vmm.wait().status == 0)

        // vgatext.elf never leaves text mode: no picture, whether the machine has the Bochs display or not.
        for vga in [["--vga", "std"], []] {
            // A console and socket of its own: nothing left from the run before can satisfy the wait.
            let console = dir + "/text\(vga.count).txt", socket = dir + "/text\(vga.count).sock"
            let text = Spawned(VMMProcess.binary, ["run", VMMProcess.guest("vgatext.elf"), "--append", "spin", "--serial", "file:\(console)",
                                                   "--api-sock", socket, "--max-seconds", "120"] + vga)
            defer { text.kill() }
            #expect(eventually { KeyboardTests.printed(console).hasSuffix("vga: written\n") },
                    "console: \(KeyboardTests.printed(console))")
            let refused = try ControlAPITests.ctl([socket, "screendump", dir + "/text.ppm"])
            #expect(refused.stdout == #"{"fault_message": "the display is in VGA text mode (see --vga-text)"}"# + "\n", "\(vga)")
            #expect(refused.status == 4, "\(vga): \(refused.stderr)")
            #expect(!FileManager.default.fileExists(atPath: dir + "/text.ppm"))
            _ = try ControlAPITests.ctl([socket, "stop"])
            #expect(text.wait().status == 0)
        }
    }

    @Test("the mode and the picture survive a snapshot: restored in a new process, --screendump writes the same pixels; --screendump to a restore of a machine still in text mode writes nothing, saying why")
    func snapshot() throws {
        let dir = try VMMProcess.scratch("vbe", "snapshot")
        let snap = dir + "/snap"
        let (vmm, socket) = Self.spinning(dir)
        defer { vmm.kill() }
        try ControlAPITests.snapshotAndStop(vmm, socket, into: snap)
        let saved = try String(contentsOfFile: snap + "/device-launcher-devices.state", encoding: .utf8)
        #expect(saved.contains("\nbochs 0x6 0xb0c5 0x40 0x30 0x20 0x41 0x0 0x40 0x0 0x0 0x0\n"), "\(saved)")

        let shot = dir + "/restored.ppm"
        let restored = try run(["restore", snap, "--serial", "none", "--screendump", "file:\(shot)", "--max-seconds", "0.5"])
        #expect(restored.status == 16, "stderr: \(restored.stderr)")
        #expect(Self.mismatch(shot) == nil)

        let plain = dir + "/plain"
        let spun = try run(["run", Self.guest, "--append", "spin", "--max-seconds", "0.5", "--snapshot-on-stop", plain])
        #expect(spun.status == 22, "stderr: \(spun.stderr)")
        let textShot = dir + "/text.ppm"
        let r = try run(["restore", plain, "--serial", "none", "--screendump", "file:\(textShot)", "--max-seconds", "0.5"])
        #expect(r.status == 16, "stderr: \(r.stderr)")
        #expect(r.stderr == "vmm: --screendump: nothing written: the display is in VGA text mode (see --vga-text)\nvmm: stopped after --max-seconds 0.5\n")
        #expect(FileManager.default.contents(atPath: textShot)?.isEmpty == true)
    }
}
