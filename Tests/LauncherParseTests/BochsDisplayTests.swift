@testable import Launcher
import Testing

/// The Bochs VBE display (`BochsDisplay`, `vmm run --vga std`) as a guest's driver sees
/// its registers, over memory standing in for the framebuffer; the guest on real KVM is
/// `BochsDisplayGuestTests`.
@Suite("the Bochs VBE display's registers")
struct BochsDisplayTests {
    typealias Reg = BochsDisplay.Reg

    /// A display over `vramSize` bytes of 0xaa, freed by `body`'s end.
    static func withDisplay(_ body: (BochsDisplay, UnsafeMutableRawPointer) throws -> Void) rethrows {
        let vram = UnsafeMutableRawPointer.allocate(byteCount: BochsDisplay.vramSize, alignment: 4096)
        defer { vram.deallocate() }
        vram.initializeMemory(as: UInt8.self, repeating: 0xaa, count: BochsDisplay.vramSize)
        try body(BochsDisplay(vram: vram), vram)
    }

    static func set(_ d: BochsDisplay, _ index: Int, _ value: UInt16) {
        d.write(isIndex: true, UInt16(index))
        d.write(isIndex: false, value)
    }

    static func get(_ d: BochsDisplay, _ index: Int) -> UInt16 {
        d.write(isIndex: true, UInt16(index))
        return d.read(isIndex: false)
    }

    static func mode(_ d: BochsDisplay, _ x: UInt16, _ y: UInt16, _ bpp: UInt16, enable: UInt16 = 0x41) {
        set(d, Reg.enable, 0)
        set(d, Reg.xres, x)
        set(d, Reg.yres, y)
        set(d, Reg.bpp, bpp)
        set(d, Reg.enable, enable)
    }

    @Test("after a reset: id 0xb0c5, disabled, 256 units of 64 KiB; GETCAPS reads the maxima; another id than 0xb0c0-0xb0c5 is ignored; an index past 0xa reads 0")
    func reset() {
        Self.withDisplay { d, _ in
            #expect(Self.get(d, Reg.id) == 0xb0c5)
            #expect(Self.get(d, Reg.enable) == 0)
            #expect(Self.get(d, Reg.videoMemory64K) == 0x100)
            #expect(Self.get(d, 0x0b) == 0 && Self.get(d, 0xffff) == 0)
            #expect(d.geometry == nil)
            Self.set(d, Reg.id, 0xb0c2)
            #expect(Self.get(d, Reg.id) == 0xb0c2)
            Self.set(d, Reg.id, 0xb0c6)
            Self.set(d, Reg.id, 0x1234)
            #expect(Self.get(d, Reg.id) == 0xb0c2)
            Self.set(d, Reg.enable, 0x02)
            #expect([Reg.xres, Reg.yres, Reg.bpp].map { Self.get(d, $0) } == [16000, 12000, 32])
            Self.set(d, Reg.enable, 0)
            #expect([Reg.xres, Reg.yres, Reg.bpp].map { Self.get(d, $0) } == [0, 0, 0])
        }
    }

    @Test("enabling a mode clears its visible lines (not the rest) unless NOCLEARMEM, and sets the virtual size; disabling keeps the registers")
    func enable() {
        Self.withDisplay { d, vram in
            Self.mode(d, 64, 48, 32)
            #expect(d.geometry == .init(width: 64, height: 48, bitsPerPixel: 32, lineLength: 256, start: 0))
            #expect(Self.get(d, Reg.virtWidth) == 64)
            // 65536 lines of 256 bytes: truncated to the 16-bit register, as QEMU's.
            #expect(Self.get(d, Reg.virtHeight) == 0)
            #expect(vram.load(fromByteOffset: 48 * 256 - 1, as: UInt8.self) == 0)
            #expect(vram.load(fromByteOffset: 48 * 256, as: UInt8.self) == 0xaa)
            vram.storeBytes(of: 0x55, toByteOffset: 0, as: UInt8.self)
            Self.mode(d, 64, 48, 32, enable: 0xc1)
            #expect(vram.load(fromByteOffset: 0, as: UInt8.self) == 0x55)
            Self.set(d, Reg.enable, 0)
            #expect(d.geometry == nil)
            #expect([Reg.xres, Reg.yres, Reg.bpp].map { Self.get(d, $0) } == [64, 48, 32])
        }
    }

    @Test("a mode past what the memory holds is clamped as QEMU's, never refused: width, depth, height, offsets")
    func clamps() {
        Self.withDisplay { d, _ in
            Self.mode(d, 64, 48, 32)
            Self.set(d, Reg.xres, 0xffff)
            #expect(Self.get(d, Reg.xres) == 16000 && Self.get(d, Reg.virtWidth) == 16000)
            Self.set(d, Reg.yres, 0xffff)
            // 16 MiB of 64000-byte lines.
            #expect(Self.get(d, Reg.yres) == 262 && Self.get(d, Reg.virtHeight) == 262)
            Self.set(d, Reg.bpp, 7)
            #expect(Self.get(d, Reg.bpp) == 8)
            Self.set(d, Reg.xres, 0)
            #expect(Self.get(d, Reg.xres) == 8)
            Self.set(d, Reg.xres, 101)
            #expect(Self.get(d, Reg.xres) == 96)
            // An offset whose picture would run past the memory's end is reset to 0.
            Self.mode(d, 640, 480, 32)
            Self.set(d, Reg.yOffset, 0xffff)
            #expect(Self.get(d, Reg.yOffset) == 0)
            Self.set(d, Reg.yOffset, 100)
            #expect(d.geometry?.start == 100 * 2560)
            Self.set(d, Reg.xOffset, 3)
            #expect(d.geometry?.start == 100 * 2560 + 12)
            // Every state a guest reaches is one a snapshot restores, and fits the memory.
            for bpp: UInt16 in [4, 8, 15, 16, 24, 32, 0, 0xffff] {
                for (x, y) in [(0xffff, 0xffff), (8, 0xffff), (0xfff8, 1), (1, 1)] as [(UInt16, UInt16)] {
                    Self.mode(d, x, y, bpp)
                    Self.set(d, Reg.xOffset, 0xffff)
                    Self.set(d, Reg.yOffset, 0xffff)
                    #expect(BochsDisplay.refusal(d.registers) == nil)
                    let g = d.geometry!
                    #expect(g.start + g.height * g.lineLength <= BochsDisplay.vramSize, "\(g)")
                }
            }
        }
    }

    @Test("the registers read back from a snapshot as saved; a damaged line is refused naming the value")
    func snapshot() throws {
        Self.withDisplay { d, _ in
            Self.mode(d, 64, 48, 32)
            Self.set(d, Reg.bank, 0x1ff)
            #expect(Self.get(d, Reg.bank) == 0xff)
            let state = BuiltInDeviceState(bochs: d.registers)
            let text = String(decoding: state.encoded(), as: UTF8.self)
            #expect(text.contains("\nbochs 0x5 0xb0c5 0x40 0x30 0x20 0x41 0xff 0x40 0x0 0x0 0x0\n"), "\(text)")
            let back = BuiltInDeviceStateTests.decode(text)
            #expect((try? back.get()) == state)
        }
        let cases: [(String, String)] = [
            ("bochs 0x0 0xb0c5 0x40 0x30 0x20 0x41 0x0 0x40 0x0 0x0", "the wrong number of values"),
            ("bochs 0x0 0xb0c5 0x40 0x30 0x20 0x41 0x0 0x40 0x0 0x0 0x10000", "bochs register '0x10000'"),
            ("bochs 0x0 0xb0c7 0x40 0x30 0x20 0x41 0x0 0x40 0x0 0x0 0x0", "bochs display: id 0xb0c7 is not 0xb0c0-0xb0c5"),
            ("bochs 0x0 0xb0c5 0x40 0x30 0x20 0x41 0x100 0x40 0x0 0x0 0x0", "bochs display: bank 256 is past the memory's 256"),
            // Enabled, 64 wide but a virtual width of 16: not a mode the display holds.
            ("bochs 0x0 0xb0c5 0x40 0x30 0x20 0x41 0x0 0x10 0x0 0x0 0x0", "are not a mode the display holds"),
            ("bochs 0x0 0xb0c5 0x3e81 0x30 0x20 0x41 0x0 0x3e81 0x0 0x0 0x0", "are not a mode the display holds"),
        ]
        for (line, why) in cases {
            let r = BuiltInDeviceStateTests.decode("vmm-launcher-devices 1\n\(line)\nend\n")
            guard case let .failure(error) = r else { Issue.record("accepted: \(line)"); continue }
            #expect(error.message.contains(why), "\(line): \(error.message)")
            #expect(!error.message.contains("\n"))
        }
        // Disabled, the registers are kept as written (QEMU checks them when enabled).
        let raw = try BuiltInDeviceStateTests.decode("vmm-launcher-devices 1\nbochs 0x9 0xb0c0 0xffff 0x0 0x7 0x0 0x0 0x0 0x0 0xffff 0x0\nend\n").get()
        #expect(raw.bochs?.regs[Reg.xres] == 0xffff)
    }

    @Test("an enabled mode reprograms the VGA's registers as QEMU's vbe_update_vgaregs: graphics at 0xa0000, the CRT controller's width, height and pitch past CR0-CR7's lock; so no text screen; disabled, they stay")
    func programsTheVGA() throws {
        let vram = UnsafeMutableRawPointer.allocate(byteCount: BochsDisplay.vramSize, alignment: 4096)
        defer { vram.deallocate() }
        let vga = VGARegisters(), d = BochsDisplay(vram: vram, vga: vga)
        Self.set(d, Reg.xres, 640) // disabled: nothing changes
        #expect(vga.registers == VGARegisters.Registers())
        Self.mode(d, 640, 480, 32)
        let r = vga.registers
        #expect(r.controllers.graphics[6] == 0x07 && r.controllers.graphics[5] == 0x50)
        // CR1 79; CR7 bits 1 (height bit 8) and 4 (line compare bit 8); CR9 only bit 6;
        // CR12 479's low byte; CR13 2560 / 8 truncated; CR17 as mode 3's; CR18 0xff.
        #expect([r.crtc[1], r.crtc[7], r.crtc[9], r.crtc[0x12], r.crtc[0x13], r.crtc[0x17], r.crtc[0x18]]
            == [0x4f, 0x1f, 0x40, 0xdf, 0x40, 0xa3, 0xff])
        #expect(VGATextLayout.of(r) == .failure(.init(why: "the display is in a graphics mode (see --screendump)")))
        Self.mode(d, 800, 600, 4) // planar: shift 0
        #expect(vga.registers.controllers.graphics[5] == 0x10)
        #expect(vga.registers.crtc[0x13] == 50) // 400 bytes a line / 8
        Self.set(d, Reg.enable, 0)
        #expect(vga.registers.controllers.graphics[6] == 0x07) // as QEMU's: the BIOS would set a mode
    }
}
