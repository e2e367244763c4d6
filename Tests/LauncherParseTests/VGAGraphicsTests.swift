@testable import Launcher
import Testing
import VMMKit

/// The VGA's own 256-colour picture (`VGAGraphics`) as QEMU's `vga_draw_graphic` derives
/// it from the registers, programmed through the ports as a guest does.
@Suite("the VGA's 256-colour graphics")
struct VGAGraphicsTests {
    /// OSDev's "VGA Hardware" mode 13h table, written as mode13.S writes it.
    static func mode13h(_ vga: VGARegisters = VGARegisters()) -> VGARegisters {
        let crtc: [UInt8] = [0x5f, 0x4f, 0x50, 0x82, 0x54, 0x80, 0xbf, 0x1f, 0x00, 0x41, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                             0x9c, 0x0e, 0x8f, 0x28, 0x40, 0x96, 0xb9, 0xa3, 0xff]
        vga.write(0x3c2, 0x63)
        for (i, v) in [0x03, 0x01, 0x0f, 0x00, 0x0e].enumerated() { set(vga, 0x3c4, i, UInt8(v)) }
        set(vga, 0x3d4, 0x11, 0x0e) // unlock CR0-CR7
        for (i, v) in crtc.enumerated() { set(vga, 0x3d4, i, v) }
        for (i, v) in [0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x05, 0x0f, 0xff].enumerated() { set(vga, 0x3ce, i, UInt8(v)) }
        _ = vga.read(0x3da)
        for (i, v) in (Array(0..<16) + [0x41, 0x00, 0x0f, 0x00, 0x00]).enumerated() {
            vga.write(0x3c0, UInt8(i))
            vga.write(0x3c0, UInt8(v))
        }
        vga.write(0x3c0, 0x20) // video on
        return vga
    }

    /// Register `index` behind index port `port` (its data port the next) = `value`.
    static func set(_ vga: VGARegisters, _ port: UInt16, _ index: Int, _ value: UInt8) {
        vga.write(port, UInt8(index))
        vga.write(port + 1, value)
    }

    static func mode(_ vga: VGARegisters) -> Result<VGAGraphics, VGAGraphics.Refusal> { VGAGraphics.mode(vga.registers) }

    @Test("mode 13h: 640x400 as QEMU's surface, each 320-byte line of the 64 KiB window at 0xa0000 shown twice")
    func mode13() throws {
        let m = try Self.mode(Self.mode13h()).get()
        #expect(m.width == 640 && m.height == 400)
        #expect(m.windowBase == 0xa_0000 && m.windowSize == 0x1_0000)
        #expect(m.lines == (0..<400).map { ($0 / 2) * 320 })
    }

    @Test("no picture in text mode (as from reset), blanked, planar 16-colour, unchained (mode X), or past the window, each saying so")
    func refusals() {
        func why(_ vga: VGARegisters) -> String? {
            if case .failure(let r) = Self.mode(vga) { return r.why }
            return nil
        }
        #expect(why(VGARegisters()) == "the display is in VGA text mode (see --vga-text)")
        let blank = Self.mode13h()
        _ = blank.read(0x3da)
        blank.write(0x3c0, 0x10) // index without the palette source bit
        #expect(why(blank) == "the display is blanked (the attribute controller's palette source bit is clear)")
        let planar = Self.mode13h()
        Self.set(planar, 0x3ce, 5, 0x00)
        #expect(why(planar) == "the display is in a planar 16-colour or CGA graphics mode, which is not modelled")
        let modeX = Self.mode13h()
        Self.set(modeX, 0x3c4, 4, 0x06)
        #expect(why(modeX) == "the display is in an unchained 256-colour mode (mode X), which is not modelled")
        let late = Self.mode13h()
        Self.set(late, 0x3d4, 0x0c, 0xff) // start address 0xff00 words
        #expect(why(late) == "line 0 of the 640x400 picture reads memory offset 0x3fc00, past the 64 KiB window at 0xa0000")
        // The 32 KiB window at 0xb8000 holds 102 lines of 320 bytes, shown twice each.
        let small = Self.mode13h()
        Self.set(small, 0x3ce, 6, 0x0d)
        #expect(why(small) == "line 204 of the 640x400 picture reads memory offset 0x7f80, past the 32 KiB window at 0xb8000")
    }

    @Test("double scan, CGA interleaving (CR17 bit 0 clear) and the line compare register, as QEMU's loop applies them")
    func addressing() throws {
        let doubled = Self.mode13h()
        Self.set(doubled, 0x3d4, 9, 0x81) // two scan lines, doubled: each memory line 4 times
        #expect(try Self.mode(doubled).get().lines.prefix(9) == [0, 0, 0, 0, 320, 320, 320, 320, 640])
        let cga = Self.mode13h()
        Self.set(cga, 0x3d4, 0x17, 0xa2) // odd memory lines at bit 14; the address moves every second one
        #expect(try Self.mode(cga).get().lines.prefix(8) == [0, 0, 0x4000, 0x4000, 320, 320, 320 | 0x4000, 320 | 0x4000])
        let split = Self.mode13h()
        Self.set(split, 0x3d4, 0x18, 5) // after display line 5, memory from its start
        Self.set(split, 0x3d4, 0x07, 0x0f) // CR7 bit 4 clear: line compare bit 8 clear
        Self.set(split, 0x3d4, 0x09, 0x01) // CR9 bit 6 clear: bit 9 clear
        #expect(try Self.mode(split).get().lines.prefix(10) == [0, 0, 320, 320, 640, 640, 0, 0, 320, 320])
    }
}

/// `Screendump`'s picture of the VGA's mode 13h, from guest memory with no VM.
@Suite("the screendump of mode 13h")
struct VGAScreendumpTests {
    /// A machine with the VGA in mode 13h, DAC entry 1 red, and `ram` bytes of RAM from 0.
    static func machine(ram: Int = 0x10_0000, dac: Bool = true) throws -> Screendump.Source {
        let memory = GuestMemory.detached()
        try memory.addRegion(name: "ram", guestAddress: 0, size: UInt64(ram))
        let devices = BuiltInDevices()
        devices.vga = VGAGraphicsTests.mode13h()
        if dac {
            let d = VGADAC()
            for (port, v) in [(VGADAC.writeIndexPort, 1), (VGADAC.dataPort, 63), (VGADAC.dataPort, 0), (VGADAC.dataPort, 0)] {
                d.write(port, UInt8(v))
            }
            devices.dac = d
        }
        return Screendump.Source(devices, memory: memory)
    }

    static func picture(_ source: Screendump.Source) -> ([UInt8], String?) {
        var out: [UInt8] = []
        let why = Screendump.picture(source) { out += $0; return true }
        return (out, why)
    }

    @Test("each byte at 0xa0000 two pixels wide and two lines high, through the DAC's palette, after QEMU's P6 header")
    func pixels() throws {
        let source = try Self.machine()
        try source.memory.write(0xa_0000 + 321, UInt8(1)) // mode pixel (1, 1)
        let (out, why) = Self.picture(source)
        #expect(why == nil)
        let header = Array("P6\n640 400\n255\n".utf8)
        #expect(out.starts(with: header) && out.count == header.count + 640 * 400 * 3)
        let red = (0..<640 * 400).filter { p in out[header.count + 3 * p] != 0 }
        #expect(red == [2 * 640 + 2, 2 * 640 + 3, 3 * 640 + 2, 3 * 640 + 3])
        #expect(out[header.count + 3 * (2 * 640 + 2)..<header.count + 3 * (2 * 640 + 2) + 3] == [0xff, 0, 0])
    }

    @Test("nothing without the window in RAM or with the DAC's ports a plugin's, nor for text mode, each saying why")
    func refusals() throws {
        #expect(Self.picture(try Self.machine(ram: 0xa_0000)) == ([], "the VGA's window at 0xa0000 is not in the guest's RAM"))
        #expect(Self.picture(try Self.machine(dac: false))
            == ([], "the display is in an 8-bit palette mode, and a plugin holds the DAC's ports (0x3c6-0x3c9)"))
        let text = try Self.machine()
        text.vga?.restore(VGARegisters.Registers())
        #expect(Self.picture(text) == ([], "the display is in VGA text mode (see --vga-text)"))
        let none = Screendump.Source(BuiltInDevices(), memory: text.memory)
        #expect(Self.picture(none) == ([], "the machine has no display whose picture is modelled (a plugin holds the VGA's registers)"))
    }
}
