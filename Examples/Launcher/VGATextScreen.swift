import VMMKit

/// The VGA text screen a guest written for QEMU leaves in memory: 80 columns by 25 rows
/// of (character, attribute) byte pairs at guest-physical 0xb8000, where hobby kernels
/// (OSDev's "Bare Bones" and its many descendants) print, often nowhere else. Here that
/// range is plain RAM, so the guest writes it at full speed and nothing shows; with
/// `--vga-text TARGET` the screen is written out as text when the run ends, whatever
/// ended it, as a user would read it off QEMU's window.
///
/// The guest chooses every byte, and a terminal may read the output: printable ASCII
/// stays, bytes 0x80-0xfe are code page 437's letters, box drawing and symbols as UTF-8
/// (what the VGA's font shows), NUL and 0xff are blanks (RAM's zeros, a screen never
/// written), and the rest (0x01-0x1f, ESC and BEL among them, and 0x7f, which the font
/// draws as symbols a terminal would act on) print as '?'. Attributes (colours) are
/// dropped; trailing blanks and blank rows at the bottom too.
/// The VGA's registers (`VGARegisters`) change nothing here: no start address, no
/// cursor; no other modes.
enum VGATextScreen {
    static let address: UInt64 = 0xb_8000
    static let columns = 80, rows = 25
    static var size: Int { columns * rows * 2 }
    /// Code page 437's characters 0x80-0xfe (0xff, a non-breaking space, is a blank).
    static let codePage437High = Array("ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜ¢£¥₧ƒáíóúñÑªº¿⌐¬½¼¡«»░▒▓│┤╡╢╖╕╣║╗╝╜╛┐└┴┬├─┼╞╟╚╔╩╦╠═╬╧╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀αßΓπΣσµτΦΘΩδ∞φε∩≡±≥≤⌠⌡÷≈°∙·√ⁿ²■".unicodeScalars)

    /// The screen in `cells` (`size` bytes: character, attribute, ...) as lines of text,
    /// each ending in a newline; empty for a blank screen.
    static func text(_ cells: [UInt8]) -> String {
        var lines: [String] = []
        for row in 0..<rows {
            var line = String.UnicodeScalarView()
            for column in 0..<columns {
                let i = (row * columns + column) * 2
                line.append(character(i < cells.count ? cells[i] : 0))
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

    /// The screen in `memory` now (`vmm ctl PATH screen` too); nil when its RAM does not
    /// reach 0xb8000 + 4000.
    static func read(_ memory: GuestMemory) -> String? {
        guard let cells = try? memory.readBytes(address, count: size) else { return nil }
        return text(cells)
    }

    /// Writes the screen of `memory` to `sink`; a guest whose RAM does not reach the
    /// screen is said to have none, in one line on stderr.
    static func write(from memory: GuestMemory, to sink: OutputSink) {
        guard let screen = read(memory) else {
            return ExitStats.err("vmm: --vga-text: the guest has no RAM at \(hex(address))-\(hex(address + UInt64(size) - 1)) to read a screen from\n")
        }
        let bytes = Array(screen.utf8)
        sink.emit(count: bytes.count) { UInt32(bytes[$0]) }
    }
}
