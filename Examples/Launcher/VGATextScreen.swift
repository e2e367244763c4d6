import VMMKit

/// The VGA text screen a guest written for QEMU leaves in memory: 80 columns by 25 rows
/// of (character, attribute) byte pairs at guest-physical 0xb8000, where hobby kernels
/// (OSDev's "Bare Bones" and its many descendants) print, often nowhere else. Here that
/// range is plain RAM, so the guest writes it at full speed and nothing shows; with
/// `--vga-text TARGET` the screen is written out as text when the run ends, whatever
/// ended it, as a user would read it off QEMU's window.
///
/// The guest chooses every byte, and a terminal may read the output: printable ASCII
/// stays, NUL is a blank (RAM's zeros, a screen never written), and any other byte
/// (control characters, ESC among them; code page 437's box drawing) prints as '?'.
/// Attributes (colours) are dropped; trailing blanks and blank rows at the bottom too.
/// Not modelled: the CRTC (ports 0x3d4/0x3d5: cursor, start address) and other modes.
enum VGATextScreen {
    static let address: UInt64 = 0xb_8000
    static let columns = 80, rows = 25
    static var size: Int { columns * rows * 2 }

    /// The screen in `cells` (`size` bytes: character, attribute, ...) as lines of text,
    /// each ending in a newline; empty for a blank screen.
    static func text(_ cells: [UInt8]) -> String {
        var lines: [String] = []
        for row in 0..<rows {
            var line: [UInt8] = []
            for column in 0..<columns {
                let i = (row * columns + column) * 2
                let c = i < cells.count ? cells[i] : 0
                line.append(c == 0 ? 0x20 : (0x20...0x7e).contains(c) ? c : UInt8(ascii: "?"))
            }
            while line.last == 0x20 { line.removeLast() }
            lines.append(String(decoding: line, as: UTF8.self))
        }
        while lines.last == "" { lines.removeLast() }
        return lines.map { $0 + "\n" }.joined()
    }

    /// `--vga-text`'s output, opened before the guest runs: a bad target is refused first.
    static func sink(_ target: SerialTarget) throws(LauncherError) -> OutputSink? {
        guard target != .none else { return nil }
        return try OutputSink(target, device: "VGA text screen", flag: "--vga-text",
                              fifoNote: "the screen is written once, as the run ends, and does not wait for a reader")
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
