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
}
