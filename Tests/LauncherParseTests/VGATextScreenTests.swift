@testable import Launcher
import Testing

/// The VGA text screen as `--vga-text` writes it: every byte of it the guest's choice.
@Suite("the VGA text screen as text")
struct VGATextScreenTests {
    @Test("any cells give at most 25 lines of at most 80 printable ASCII characters, trailing blanks gone; a blank screen gives nothing")
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
            #expect(lines.allSatisfy { $0.utf8.count <= 80 && $0.last != " " })
            #expect(text.utf8.allSatisfy { (0x20...0x7e).contains($0) || $0 == 0x0a })
        }
        // Characters at even offsets, attributes between: row 1's "A" after a blank row 0.
        var cells = [UInt8](repeating: 0, count: VGATextScreen.size)
        cells[80 * 2] = UInt8(ascii: "A"); cells[80 * 2 + 1] = 0x1b
        #expect(VGATextScreen.text(cells) == "\nA\n")
    }
}
