@testable import Launcher
import Testing

/// The VGA registers text-mode guests touch (`VGARegisters`), as QEMU's VGA answers them.
@Suite("the VGA registers")
struct VGARegistersTests {
    @Test("mode 3 from reset; input status 1 flips retrace and display on each read; CR0-CR7 locked by CR11 bit 7 but CR7's bit 4; unlocked, any register")
    func crtc() {
        let vga = VGARegisters()
        #expect(vga.read(0x3cc) == 0x67)
        #expect([vga.read(0x3da), vga.read(0x3da), vga.read(0x3da)] == [0x09, 0x00, 0x09])
        vga.write(0x3d4, 0x0f)
        #expect(vga.read(0x3d4) == 0x0f)
        #expect(vga.read(0x3d5) == 0x00)
        vga.write(0x3d5, 0x50)
        #expect(vga.read(0x3d5) == 0x50)
        vga.write(0x3d4, 0x00)
        vga.write(0x3d5, 0x11)
        #expect(vga.read(0x3d5) == 0x5f)
        vga.write(0x3d4, 0x07)
        vga.write(0x3d5, 0xff)
        #expect(vga.read(0x3d5) == 0x1f | 0x10)
        vga.write(0x3d4, 0x11)
        vga.write(0x3d5, 0x0e) // unlock
        vga.write(0x3d4, 0x00)
        vga.write(0x3d5, 0x11)
        #expect(vga.read(0x3d5) == 0x11)
        vga.write(0x3d4, 0x19) // past the CRT controller's registers
        vga.write(0x3d5, 0x12)
        #expect(vga.read(0x3d5) == 0xff)
        #expect(vga.registers.crtc.count == 25)
    }

    @Test("the miscellaneous output register picks the colour or monochrome ports; the other range reads 0xff and ignores writes")
    func ranges() {
        let vga = VGARegisters()
        vga.write(0x3b4, 0x0e)
        #expect(vga.read(0x3b4) == 0xff)
        #expect(vga.read(0x3ba) == 0xff)
        vga.write(0x3c2, 0x76) // monochrome; bit 4 is never kept
        #expect(vga.read(0x3cc) == 0x66)
        #expect(vga.read(0x3d4) == 0xff)
        vga.write(0x3b4, 0x0e)
        #expect(vga.read(0x3b4) == 0x0e)
        #expect(vga.read(0x3ba) == 0x09)
        vga.write(0x3c2, 0x67)
        #expect(vga.read(0x3d4) == 0x0e)
    }

    @Test("the controllers as SeaBIOS's mode 3 leaves them; the attribute controller's index and value in turn, its flip-flop reset by input status 1 (in the selected range only); writes keep QEMU's bits; 0x3c1, 0x3c3, 0x3cb and 0x3cd take no write")
    func controllers() {
        let vga = VGARegisters()
        #expect(vga.read(0x3c0) == 0, "the flip-flop at the value: the index reads 0")
        _ = vga.read(0x3da)
        #expect(vga.read(0x3c0) == 0x20)
        vga.write(0x3c0, 0x10 | 0xc0) // the index keeps 6 bits
        #expect(vga.read(0x3c1) == 0x0c)
        vga.write(0x3c0, 0xff) // mode control: bit 4 is never kept
        #expect(vga.registers.controllers.attribute[0x10] == 0xef)
        vga.write(0x3c0, 0x35) // index 0x15: past the registers
        #expect(vga.read(0x3c1) == 0)
        vga.write(0x3c0, 0x12) // a value for no register; the flip-flop turns
        vga.write(0x3c1, 0x99) // not a write port: the flip-flop stays
        #expect(vga.read(0x3c0) == 0x35 && vga.registers.controllers.attribute.count == 21)
        vga.write(0x3c0, 0x06)
        _ = vga.read(0x3ba) // the monochrome range is not selected: no reset
        vga.write(0x3c0, 0xff)
        #expect(vga.registers.controllers.attribute[6] == 0x3f && vga.registers.controllers.attributeIndex == 0x06)
        vga.write(0x3c0, 0x07)
        _ = vga.read(0x3da)
        vga.write(0x3c0, 0x08)
        #expect(vga.registers.controllers.attributeIndex == 0x08, "input status 1 put the flip-flop back at the index")

        #expect(vga.read(0x3c4) == 0 && vga.read(0x3c5) == 0x03)
        for (index, mask) in VGAControllers.sequencerMasks.enumerated() {
            vga.write(0x3c4, UInt8(index) | 0xf8)
            vga.write(0x3c5, 0xff)
            #expect(vga.read(0x3c4) == UInt8(index) && vga.read(0x3c5) == mask)
        }
        #expect(vga.read(0x3ce) == 5 && vga.read(0x3cf) == 0x10)
        for (index, mask) in VGAControllers.graphicsMasks.enumerated() {
            vga.write(0x3ce, UInt8(index) | 0xf0)
            vga.write(0x3cf, 0xff)
            #expect(vga.read(0x3ce) == UInt8(index) && vga.read(0x3cf) == mask)
        }
        vga.write(0x3da, 0xff)
        #expect(vga.read(0x3ca) == 0x10)
        vga.write(0x3ba, 0x00) // not selected
        #expect(vga.read(0x3ca) == 0x10)
        for port in [0x3c3, 0x3cb, 0x3cd] as [UInt16] {
            vga.write(port, 0xff)
            #expect(vga.read(port) == 0)
        }
    }

    @Test("the controllers through the snapshot blob: no line as mode 3 left them, a line otherwise that reads back; damaged lines refused")
    func controllersBlob() throws {
        let vga = VGARegisters()
        #expect(!String(decoding: BuiltInDeviceState(vga: vga.registers).encoded(), as: UTF8.self).contains("vga-controllers"))
        vga.write(0x3c4, 0x02)
        vga.write(0x3c5, 0x05)
        _ = vga.read(0x3da)
        let blob = BuiltInDeviceState(vga: vga.registers).encoded()
        let sr = BuiltInDeviceState.hexDigits(VGAControllers().sequencer), gr = BuiltInDeviceState.hexDigits(VGAControllers().graphics)
        let ar = BuiltInDeviceState.hexDigits(VGAControllers().attribute)
        #expect(String(decoding: blob, as: UTF8.self).contains("\nvga-controllers 0x2 0300050002000000 0x5 \(gr) 0x20 0 \(ar) 0x0\n"))
        #expect(try BuiltInDeviceState.decode(blob, version: 1, where: "snap").vga == vga.registers)
        let vgaLine = "vga 0x67 0x0 0x0 " + BuiltInDeviceState.hexDigits(VGARegisters.mode3CRTC) + "\n"
        for (line, why) in [("vga-controllers 0x8 \(sr) 0x5 \(gr) 0x20 1 \(ar) 0x0", "indexes 0x8 0x5 0x20"),
                            ("vga-controllers 0x0 \(sr) 0x5 \(gr) 0x20 2 \(ar) 0x0", "attribute flip-flop '2' (0 or 1)"),
                            ("vga-controllers 0x0 \(sr) 0x5 \(gr) 0x20 1 \(ar) 0x1", "feature control 0x1"),
                            ("vga-controllers 0x0 0300030003000000 0x5 \(gr) 0x20 1 \(ar) 0x0", "sequencer register 4 0x3 (bits 0xe only)"),
                            ("vga-controllers 0x0 \(sr) 0x5 \(gr) 0x20 1 40" + ar.dropFirst(2) + " 0x0", "attribute register 0 0x40 (bits 0x3f only)"),
                            ("vga-controllers 0x0 \(sr) 0x5 \(gr) 0x20 1 \(ar)", "a device given twice, or the wrong number of values")] {
            guard case let .failure(e) = BuiltInDeviceStateTests.decode("vmm-launcher-devices 1\n" + vgaLine + line + "\nend\n") else {
                Issue.record("accepted: \(line)"); continue
            }
            #expect(e.message.contains(why), "\(e.message)")
        }
        guard case let .failure(e) = BuiltInDeviceStateTests.decode("vmm-launcher-devices 1\nvga-controllers 0x0 \(sr) 0x5 \(gr) 0x20 1 \(ar) 0x0\nend\n") else {
            Issue.record("a vga-controllers line without vga was accepted"); return
        }
        #expect(e.message.hasSuffix("vga-controllers without vga"))
    }
}
