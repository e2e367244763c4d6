import Foundation
import Testing

/// Mode 13h as a `-kernel` guest written for QEMU sets it, with no BIOS: the registers
/// programmed by hand, the palette loaded, pixels drawn at 0xa0000
/// (Examples/GuestImages/qemu/mode13.S), and the picture `--screendump` and
/// `vmm ctl PATH screendump` write: QEMU's 640x400, each pixel of the mode 2x2.
@Suite("the VGA's mode 13h picture on real KVM", .serialized, .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct VGAGraphicsGuestTests {
    static let guest = VMMProcess.guest("mode13.elf")
    static let done: Int32 = (0x13 << 1) | 1

    func run(_ args: [String]) throws -> VMMProcess.Result { try PluginListingTests.run(args, bound: 120) }

    /// What mode13.S draws, 640x400 as "rrggbb": red (0,0), green (319,0), blue (0,199),
    /// white (319,199) and row 100 yellow, each mode pixel 2x2; the rest black.
    static let expected: [String] = {
        var p = [String](repeating: "000000", count: 640 * 400)
        func mode(_ x: Int, _ y: Int, _ colour: String) {
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] { p[(2 * y + dy) * 640 + 2 * x + dx] = colour }
        }
        for x in 0..<320 { mode(x, 100, "ffff00") }
        mode(0, 0, "ff0000"); mode(319, 0, "00ff00"); mode(0, 199, "0000ff"); mode(319, 199, "ffffff")
        return p
    }()

    /// Whether the picture at `path` is what mode13.S draws; says where it is not.
    static func mismatch(_ path: String) -> String? {
        guard let pixels = BochsDisplayGuestTests.pixels(path, width: 640, height: 400) else { return "\(path) is not a 640x400 P6 picture" }
        guard let i = pixels.indices.first(where: { pixels[$0] != expected[$0] }) else { return nil }
        return "pixel (\(i % 640), \(i / 640)) is \(pixels[i]), not \(expected[i])"
    }

    @Test("--screendump writes QEMU's 640x400 picture of mode 13h, with --vga std or without; every port the guest touches is a device's (--strict-io); --vga-text writes nothing, saying why")
    func screendump() throws {
        let dir = try VMMProcess.scratch("mode13", "dump")
        for (n, extra) in [[], ["--vga", "std"], ["--strict-io"]].enumerated() {
            let shot = dir + "/shot\(n).ppm"
            let r = try run(["run", Self.guest, "--screendump", "file:\(shot)"] + extra)
            #expect(r.stdout == "mode 13h: drawn\n", "\(extra)")
            #expect(r.stderr == "", "\(extra)")
            #expect(r.status == Self.done, "\(extra)")
            #expect(Self.mismatch(shot) == nil, "\(extra): \(Self.mismatch(shot) ?? "")")
        }
        // Mode 13h has no text: --vga-text says so and writes nothing.
        let text = try run(["run", Self.guest, "--vga-text", "stdio"])
        #expect(text.stdout == "mode 13h: drawn\n")
        #expect(text.stderr == "vmm: --vga-text: nothing written: the display is in a graphics mode (see --screendump)\n")
        #expect(text.status == Self.done)
    }

    @Test("the running guest's picture through the control API (its text screen refused: 409), and the same picture from its snapshot restored in a new process")
    func liveAndRestored() throws {
        let dir = try VMMProcess.scratch("mode13", "snapshot")
        let snap = dir + "/snap"
        let (vmm, console, socket) = ControlAPITests.served(["run", Self.guest, "--append", "spin"], in: dir)
        defer { vmm.kill() }
        #expect(eventually { KeyboardTests.printed(console) == "mode 13h: drawn\nspinning\n" }, "console: \(KeyboardTests.printed(console))")
        let live = dir + "/live.ppm"
        let r = try ControlAPITests.ctl([socket, "screendump", live])
        #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
        #expect(Self.mismatch(live) == nil, "\(Self.mismatch(live) ?? "")")
        let screen = try ControlAPITests.ctl([socket, "screen"])
        #expect(screen.stdout == #"{"fault_message": "the display is in a graphics mode (see --screendump)"}"# + "\n")
        #expect(screen.status == 4, "\(screen.stderr)")
        try ControlAPITests.snapshotAndStop(vmm, socket, into: snap)

        let shot = dir + "/restored.ppm"
        let restored = try run(["restore", snap, "--serial", "none", "--screendump", "file:\(shot)", "--max-seconds", "0.5"])
        #expect(restored.status == 16, "stderr: \(restored.stderr)")
        #expect(Self.mismatch(shot) == nil, "\(Self.mismatch(shot) ?? "")")
    }
}
