/// The VGA's own 256-colour graphics, mode 13h and the chained modes like it, as QEMU's
/// VGA draws them while the Bochs display is off (hw/display/vga.c: `vga_draw_graphic`
/// with `vga_draw_line8d2`): what a kernel written for QEMU shows after programming the
/// registers for mode 13h itself (OSDev's "VGA Hardware"), as a `-kernel` guest must,
/// with no BIOS to call. Derived from the registers (`VGARegisters.Registers`) for
/// `Screendump`; nothing is kept.
///
/// QEMU's picture is the CRT controller's: (CR1 + 1) x 8 pixels wide, the vertical
/// display end + 1 lines high (640 x 400 for mode 13h), each memory byte two pixels
/// wide and each memory line shown on (CR9's maximum scan line + 1) lines, doubled
/// again by CR9's bit 7. A memory line is CR13 x 8 bytes from the start address (CR0C,
/// CR0D, in units of 4 bytes); CR17's bits 0 and 1 clear substitute line bits into the
/// address as CGA's and Hercules' interleaving do; the line compare register sends the
/// lines after it back to the memory's start.
///
/// In a chained mode (sequencer register 4 bit 3) QEMU stores the byte a guest writes at
/// offset N of the graphics controller's window (0xa0000 for 128 or 64 KiB, 0xb0000 or
/// 0xb8000 for 32) at memory offset N, and that is the byte its picture reads. Here the
/// window is guest RAM, so the picture reads the guest's memory there. Not modelled:
/// unchained 256-colour modes (mode X), whose bytes the sequencer spreads over four
/// planes, and the 16-colour and CGA modes (planar): refused, as is a picture whose
/// lines would read outside the window.
struct VGAGraphics: Equatable {
    var width: Int, height: Int
    /// Memory offsets of the visible lines' first bytes, top to bottom (`height` of them).
    var lines: [Int]
    /// The window the guest draws in: guest-physical base and bytes.
    var windowBase: UInt64, windowSize: Int

    /// Why registers show no picture (or text) this models.
    struct Refusal: Error, Equatable { let why: String }

    /// QEMU's blank display: the attribute index's palette source bit clear.
    static let blanked = Refusal(why: "the display is blanked (the attribute controller's palette source bit is clear)")

    /// The last visible scan line: CR12, with bits 8 and 9 in CR7.
    static func verticalDisplayEnd(_ crtc: [UInt8]) -> Int {
        Int(crtc[0x12]) | Int(crtc[7] & 0x02) << 7 | Int(crtc[7] & 0x40) << 3
    }

    /// The scan line after which the display starts again at memory 0: CR18, with bit 8
    /// in CR7 and bit 9 in CR9.
    static func lineCompare(_ crtc: [UInt8]) -> Int {
        Int(crtc[0x18]) | Int(crtc[7] & 0x10) << 4 | Int(crtc[9] & 0x40) << 3
    }

    /// The window graphics register 6 maps (bits 2-3): guest-physical base and bytes.
    static func window(_ gr6: UInt8) -> (base: UInt64, size: Int) {
        switch (gr6 >> 2) & 3 {
        case 0: (0xa_0000, 0x2_0000)
        case 1: (0xa_0000, 0x1_0000)
        case 2: (0xb_0000, 0x8000)
        default: (0xb_8000, 0x8000)
        }
    }

    /// The picture registers `r` describe, or why there is none.
    static func mode(_ r: VGARegisters.Registers) -> Result<VGAGraphics, Refusal> {
        let c = r.controllers, crtc = r.crtc
        // QEMU: blank unless the attribute index's palette source bit is set; then text
        // or graphics by the graphics controller's miscellaneous register.
        guard c.attributeIndex & VGAControllers.paletteSource != 0 else { return .failure(blanked) }
        guard c.graphics[6] & 1 != 0 else { return .failure(Refusal(why: "the display is in VGA text mode (see --vga-text)")) }
        guard (c.graphics[5] >> 5) & 3 >= 2 else {
            return .failure(Refusal(why: "the display is in a planar 16-colour or CGA graphics mode, which is not modelled"))
        }
        guard c.sequencer[4] & 0x08 != 0 else {
            return .failure(Refusal(why: "the display is in an unchained 256-colour mode (mode X), which is not modelled"))
        }
        let width = (Int(crtc[1]) + 1) * 8
        let height = verticalDisplayEnd(crtc) + 1
        let doubleScan = Int(crtc[9] >> 7)
        let multiScan = ((Int(crtc[9] & 0x1f) + 1) << doubleScan) - 1
        let lineOffset = Int(crtc[0x13]) << 3
        let lineCompare = Self.lineCompare(crtc)
        let mode = crtc[0x17]
        let (windowBase, windowSize) = window(c.graphics[6])
        // QEMU's loop over the visible lines. Every value is at most 16 bits wide and
        // there are at most 1024 lines: no sum overflows.
        var lines: [Int] = []
        lines.reserveCapacity(height)
        var first = (Int(crtc[0x0c]) << 8 | Int(crtc[0x0d])) * 4
        var memoryLine = 0, repeats = multiScan
        for y in 0..<height {
            var address = first
            if mode & 1 == 0 {
                let shift = 14 + Int((mode >> 6) & 1)
                address = address & ~(1 << shift) | (memoryLine & 1) << shift
            }
            if mode & 2 == 0 { address = address & ~0x8000 | (memoryLine & 2) << 14 }
            // Two pixels a byte: a line reads width / 2 bytes.
            guard address + width / 2 <= windowSize else {
                return .failure(Refusal(why: "line \(y) of the \(width)x\(height) picture reads memory offset \(hex(address)), "
                                        + "past the \(windowSize >> 10) KiB window at \(hex(windowBase))"))
            }
            lines.append(address)
            if repeats == 0 {
                let mask = (Int(mode) & 3) ^ 3
                if memoryLine & mask == mask { first += lineOffset }
                memoryLine += 1
                repeats = multiScan
            } else {
                repeats -= 1
            }
            if y == lineCompare { first = 0 }
        }
        return .success(VGAGraphics(width: width, height: height, lines: lines, windowBase: windowBase, windowSize: windowSize))
    }
}
