/// Where the VGA text screen's characters are and its shape (`VGATextScreen`), from the
/// VGA's registers as QEMU's text mode reads them (hw/display/vga.c:
/// `vga_get_text_resolution`, `vga_draw_text`). Derived, never kept.
struct VGATextLayout: Equatable {
    var columns: Int
    /// The cell (2 bytes) each row starts at, from the window's start, top to bottom.
    var rows: [Int]
    /// The graphics controller's window: guest-physical base and bytes.
    var windowBase: UInt64, windowSize: Int

    /// Mode 3's: 80 x 25 from 0xb8000.
    static let mode3 = VGATextLayout(columns: 80, rows: (0..<25).map { $0 * 80 }, windowBase: 0xb_8000, windowSize: 0x8000)

    /// The layout registers `r` give, or why they show no text.
    static func of(_ r: VGARegisters.Registers) -> Result<VGATextLayout, VGAGraphics.Refusal> {
        let c = r.controllers, crtc = r.crtc
        guard c.attributeIndex & VGAControllers.paletteSource != 0 else { return .failure(VGAGraphics.blanked) }
        guard c.graphics[6] & 1 == 0 else { return .failure(.init(why: "the display is in a graphics mode (see --screendump)")) }
        let characterHeight = Int(crtc[9] & 0x1f) + 1
        let columns = Int(crtc[1]) + 1
        let rows = crtc[6] == 100 ? 100 : (VGAGraphics.verticalDisplayEnd(crtc) + 1) / characterHeight
        guard rows * columns > 1, rows * columns <= 160 * 100 else {
            return .failure(.init(why: "the text mode is \(columns)x\(rows) characters, which QEMU does not draw"))
        }
        // QEMU's loop over the rows: at most 1024 of at most 510 cells after a start
        // below 65536, so no sum overflows.
        let lineCompare = VGAGraphics.lineCompare(crtc), lineCells = Int(crtc[0x13]) * 2
        var starts: [Int] = [], cell = Int(crtc[0x0c]) << 8 | Int(crtc[0x0d]), line = 0
        for _ in 0..<rows {
            starts.append(cell)
            let next = line + characterHeight
            cell += lineCells
            if line < lineCompare, next >= lineCompare { cell = 0 }
            line = next
        }
        let window = VGAGraphics.window(c.graphics[6])
        return .success(VGATextLayout(columns: columns, rows: starts, windowBase: window.base, windowSize: window.size))
    }
}
