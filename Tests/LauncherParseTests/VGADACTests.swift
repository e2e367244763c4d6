@testable import Launcher
import Testing

/// The VGA DAC (`VGADAC`) as a guest's driver sees its ports, and the colours an 8-bit
/// Bochs mode's screendump takes from it; the guest on real KVM is
/// `BochsDisplayGuestTests.palette`.
@Suite("the VGA DAC's palette")
struct VGADACTests {
    @Test("entries written three components at a time from the write index, read back from the read index, each index moving on after its third byte and wrapping at 256; 0x3c7 reads the state, 0x3c6 0xff")
    func ports() {
        let dac = VGADAC()
        #expect(dac.read(VGADAC.maskPort) == 0xff)
        dac.write(VGADAC.maskPort, 0x0f)
        #expect(dac.read(VGADAC.maskPort) == 0xff)
        dac.write(VGADAC.writeIndexPort, 0xff)
        for v: UInt8 in [1, 2, 3, 4, 5, 6, 7] { dac.write(VGADAC.dataPort, v) }
        // Entry 255, then entry 0, and a third of entry 1 waiting.
        #expect(dac.read(VGADAC.writeIndexPort) == 1 && dac.read(VGADAC.readIndexPort) == 0)
        dac.write(VGADAC.readIndexPort, 0xff)
        #expect(dac.read(VGADAC.readIndexPort) == 3)
        #expect((0..<7).map { _ in dac.read(VGADAC.dataPort) } == [1, 2, 3, 4, 5, 6, 0])
        let r = dac.registers
        #expect(r.palette[3] == 0 && r.cache[0] == 7 && r.sub == 1 && r.readIndex == 1)
        // A new write index starts a new entry: the half-written one is not kept.
        dac.write(VGADAC.writeIndexPort, 1)
        #expect(dac.registers.sub == 0 && dac.read(VGADAC.readIndexPort) == 0)
    }

    @Test("colours: 6 bits a component widened as QEMU's c6_to_8, or 8 bits as written with the 8-bit DAC")
    func colors() {
        var r = VGADAC.Registers()
        r.palette[3...5] = [63, 0x21, 0xff]
        #expect(VGADAC.color(r, 1, dac8: false) == (0xff, 0x87, 0xff))
        #expect(VGADAC.color(r, 1, dac8: true) == (63, 0x21, 0xff))
        #expect(VGADAC.color(r, 0, dac8: false) == (0, 0, 0))
    }

    @Test("the DAC reads back from a snapshot as saved (no line when all black); a damaged line is refused")
    func snapshot() {
        #expect(!String(decoding: BuiltInDeviceState().encoded(), as: UTF8.self).contains("vga-dac"))
        var r = VGADAC.Registers(writeIndex: 5, readIndex: 9, sub: 2, state: 3, cache: [0x3f, 0x10, 0])
        r.palette[767] = 0x3f
        let state = BuiltInDeviceState(dac: r)
        let text = String(decoding: state.encoded(), as: UTF8.self)
        #expect(text.contains("\nvga-dac 0x5 0x9 0x2 0x3 3f1000 " + String(repeating: "0", count: 1534) + "3f\n"))
        #expect((try? BuiltInDeviceStateTests.decode(text).get()) == state)
        let palette = String(repeating: "0", count: 1536)
        for (line, why) in [("vga-dac 0x0 0x0 0x3 0x0 000000 \(palette)", "vga-dac component 3 (0 to 2)"),
                            ("vga-dac 0x0 0x0 0x0 0x1 000000 \(palette)", "vga-dac state 1 (0 or 3)"),
                            ("vga-dac 0x0 0x0 0x0 0x0 0000 \(palette)", "vga-dac cache: 4 hex digits, not 6"),
                            ("vga-dac 0x0 0x0 0x0 0x0 000000 \(palette)0", "vga-dac palette: 1537 hex digits, not 1536"),
                            ("vga-dac 0x100 0x0 0x0 0x0 000000 \(palette)", "vga-dac write index '0x100'")] {
            let result = BuiltInDeviceStateTests.decode("vmm-launcher-devices 1\n\(line)\nend\n")
            guard case let .failure(error) = result else { Issue.record("accepted: \(line.prefix(40))"); continue }
            #expect(error.message.contains(why), "\(error.message)")
        }
    }
}
