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
}
