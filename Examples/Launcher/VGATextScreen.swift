import VMMKit

/// The VGA text screen a guest written for QEMU leaves in memory: (character, attribute)
/// byte pairs at guest-physical 0xb8000, 80 columns by 25 rows in mode 3, where hobby
/// kernels (OSDev's "Bare Bones" and its many descendants) print, often nowhere else. Here
/// that range is plain RAM, so the guest writes it at full speed and nothing shows; with
/// `--vga-text TARGET` the screen is written out as text when the run ends, whatever
/// ended it, as a user would read it off QEMU's window.
///
/// What is on the screen is where QEMU's text mode reads it (hw/display/vga.c:
/// `vga_get_text_resolution`, `vga_draw_text`), from the VGA's registers: (CR1 + 1)
/// columns, the vertical display end + 1 over CR9's character height rows (100 when CR6
/// is 100, QEMU's CGA case), each row CR13 x 2 cells after the one before it from the
/// start address (CR0C, CR0D: hardware scrolling), back to the memory's start after the
/// row the line compare register falls in, all inside the graphics controller's window
/// (0xb8000 in mode 3; a cell past it is blank). A graphics mode or a blanked display has
/// no text, nor a size QEMU does not draw (one cell, or more than 160 x 100). Without the
/// VGA's registers (a plugin holds them), mode 3's screen.
///
/// The guest chooses every byte, and a terminal may read the output: printable ASCII
/// stays, bytes 0x80-0xfe are code page 437's letters, box drawing and symbols as UTF-8
/// (what the VGA's font shows), NUL and 0xff are blanks (RAM's zeros, a screen never
/// written), and the rest (0x01-0x1f, ESC and BEL among them, and 0x7f, which the font
/// draws as symbols a terminal would act on) print as '?'. Attributes (colours) are
/// dropped; trailing blanks and blank rows at the bottom too. No cursor.
enum VGATextScreen {
    /// Mode 3's screen in bytes: 80 x 25 cells of 2.
    static let size = 80 * 25 * 2
    /// Code page 437's characters 0x80-0xfe (0xff, a non-breaking space, is a blank).
    static let codePage437High = Array("ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜ¢£¥₧ƒáíóúñÑªº¿⌐¬½¼¡«»░▒▓│┤╡╢╖╕╣║╗╝╜╛┐└┴┬├─┼╞╟╚╔╩╦╠═╬╧╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀αßΓπΣσµτΦΘΩδ∞φε∩≡±≥≤⌠⌡÷≈°∙·√ⁿ²■".unicodeScalars)

    /// The screen in `cells` (`size` bytes: character, attribute, ...) as lines of text,
    /// each ending in a newline; empty for a blank screen: mode 3's layout.
    static func text(_ cells: [UInt8]) -> String { text(.mode3, cells) }

    /// The screen `layout` gives of the window's bytes `window`.
    static func text(_ layout: VGATextLayout, _ window: [UInt8]) -> String {
        var lines: [String] = []
        for start in layout.rows {
            var line = String.UnicodeScalarView()
            for column in 0..<layout.columns {
                let i = (start + column) * 2
                line.append(character(i < window.count ? window[i] : 0))
            }
            while line.last == " " { line.removeLast() }
            lines.append(String(line))
        }
        while lines.last == "" { lines.removeLast() }
        return lines.map { $0 + "\n" }.joined()
    }

    /// What the screen shows for `byte`, as text safe for a terminal.
    static func character(_ byte: UInt8) -> Unicode.Scalar {
        switch byte {
        case 0, 0xff: " "
        case 0x20...0x7e: Unicode.Scalar(byte)
        case 0x80...0xfe: codePage437High[Int(byte - 0x80)]
        default: "?"
        }
    }

    /// `--vga-text`'s output, opened before the guest runs: a bad target is refused first.
    static func sink(_ target: SerialTarget) throws(LauncherError) -> OutputSink? {
        guard target != .none else { return nil }
        return try OutputSink(target, device: "VGA text screen", flag: "--vga-text",
                              fifoNote: "the screen is written once, as the run ends, and does not wait for a reader",
                              loss: "the screen's text is incomplete")
    }

    /// The screen in `memory` now as `vga` lays it out (mode 3's without it), or why
    /// there is none (`vmm ctl PATH screen` too).
    static func read(_ memory: GuestMemory, _ vga: VGARegisters?) -> Result<String, VGAGraphics.Refusal> {
        let layout: VGATextLayout
        switch vga.map({ VGATextLayout.of($0.registers) }) ?? .success(.mode3) {
        case .success(let l): layout = l
        case .failure(let refusal): return .failure(refusal)
        }
        guard let window = try? memory.readBytes(layout.windowBase, count: layout.windowSize) else {
            let last = layout.windowBase + UInt64(layout.windowSize) - 1
            return .failure(.init(why: "the guest has no RAM at \(hex(layout.windowBase))-\(hex(last)) to read a screen from"))
        }
        return .success(text(layout, window))
    }

    /// Writes the screen of `memory` to `sink`; one line on stderr instead when it has none.
    static func write(from memory: GuestMemory, _ vga: VGARegisters?, to sink: OutputSink) {
        switch read(memory, vga) {
        case .success(let screen):
            let bytes = Array(screen.utf8)
            sink.emit(count: bytes.count) { UInt32(bytes[$0]) }
        case .failure(let refusal): ExitStats.err("vmm: --vga-text: nothing written: \(refusal.why)\n")
        }
    }
}
