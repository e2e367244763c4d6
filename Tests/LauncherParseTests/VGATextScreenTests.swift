@testable import Launcher
import Testing

/// The VGA text screen as `--vga-text` writes it: every byte of it the guest's choice.
@Suite("the VGA text screen as text")
struct VGATextScreenTests {
    @Test("any cells give at most 25 lines of at most 80 characters, printable ASCII or code page 437's, never a control character; trailing blanks gone; a blank screen gives nothing")
    func anyBytes() {
        #expect(VGATextScreen.text([UInt8](repeating: 0, count: VGATextScreen.size)) == "")
        #expect(VGATextScreen.text([UInt8](repeating: 0x20, count: VGATextScreen.size)) == "")
        #expect(VGATextScreen.text([]) == "")
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let cells = (0..<VGATextScreen.size).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let text = VGATextScreen.text(cells)
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
            #expect(text.isEmpty || text.hasSuffix("\n"))
            #expect(lines.count <= 26)
            #expect(lines.allSatisfy { $0.unicodeScalars.count <= 80 && $0.last != " " })
            #expect(text.unicodeScalars.allSatisfy { (0x20...0x7e).contains($0.value) || $0 == "\n" || VGATextScreen.codePage437High.contains($0) })
            #expect(!text.unicodeScalars.contains { $0.properties.generalCategory == .control && $0 != "\n" })
        }
        // Characters at even offsets, attributes between: row 1's "A" after a blank row 0.
        var cells = [UInt8](repeating: 0, count: VGATextScreen.size)
        cells[80 * 2] = UInt8(ascii: "A"); cells[80 * 2 + 1] = 0x1b
        #expect(VGATextScreen.text(cells) == "\nA\n")
        // Code page 437 as the VGA's font draws it: letters, box drawing, blocks; 0xff blank.
        #expect(VGATextScreen.codePage437High.count == 127)
        let bytes: [UInt8] = [0x80, 0x9b, 0xb0, 0xc9, 0xcd, 0xbb, 0xdb, 0xe1, 0xfe, 0x1b, 0x07, 0x7f, 0x41, 0xff, 0x41]
        for (k, b) in bytes.enumerated() { cells[k * 2] = b }
        #expect(VGATextScreen.text(cells) == "Ç¢░╔═╗█ß■???A A\nA\n")
    }

    @Test("the layout from the CRT controller as QEMU's text mode reads it: mode 3 from reset; start address; 80x50 with 8-line characters; a split screen; a cell past the window blank")
    func layout() throws {
        let vga = VGARegisters()
        #expect(try VGATextLayout.of(vga.registers).get() == .mode3)
        VGAGraphicsTests.set(vga, 0x3d4, 0x0d, 80) // hardware scrolling: a row on
        #expect(try VGATextLayout.of(vga.registers).get().rows == (1...25).map { $0 * 80 })
        VGAGraphicsTests.set(vga, 0x3d4, 0x0d, 0)
        VGAGraphicsTests.set(vga, 0x3d4, 9, 0x47) // 8 scan lines a row: 400 / 8 = 50 rows
        #expect(try VGATextLayout.of(vga.registers).get().rows == (0..<50).map { $0 * 80 })
        VGAGraphicsTests.set(vga, 0x3d4, 9, 0x4f)
        VGAGraphicsTests.set(vga, 0x3d4, 0x0c, 0x08) // start at cell 0x800; from scan line 48 (row 3) on, memory's start
        VGAGraphicsTests.set(vga, 0x3d4, 0x18, 40)
        VGAGraphicsTests.set(vga, 0x3d4, 0x11, 0x0e) // unlock CR7
        VGAGraphicsTests.set(vga, 0x3d4, 0x07, 0x0f) // line compare bit 8 clear
        VGAGraphicsTests.set(vga, 0x3d4, 0x09, 0x0f) // and bit 9
        let split = try VGATextLayout.of(vga.registers).get()
        #expect(split.rows.prefix(5) == [0x800, 0x850, 0x8a0, 0, 80])
        // The row starting at cell 0x3fd8 runs past the 32 KiB window after 40 cells.
        let window = [UInt8](repeating: UInt8(ascii: "x"), count: 0x8000)
        let edge = VGATextLayout(columns: 80, rows: [0x3fd8], windowBase: 0xb_8000, windowSize: 0x8000)
        #expect(VGATextScreen.text(edge, window) == String(repeating: "x", count: 40) + "\n")
    }

    @Test("no text in a graphics mode, blanked, or a size QEMU does not draw, each saying why")
    func noText() {
        func why(_ vga: VGARegisters) -> String? {
            if case .failure(let r) = VGATextLayout.of(vga.registers) { return r.why }
            return nil
        }
        #expect(why(VGAGraphicsTests.mode13h()) == "the display is in a graphics mode (see --screendump)")
        let blank = VGARegisters()
        _ = blank.read(0x3da)
        blank.write(0x3c0, 0x00)
        #expect(why(blank) == "the display is blanked (the attribute controller's palette source bit is clear)")
        let wide = VGARegisters()
        VGAGraphicsTests.set(wide, 0x3d4, 0x09, 0x40) // 1-line characters: 80 x 400, past 160 x 100
        #expect(why(wide) == "the text mode is 80x400 characters, which QEMU does not draw")
    }
}
