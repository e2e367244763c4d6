/// `--screendump TARGET`: the Bochs display's picture as a binary PPM (P6, 8 bits a
/// channel), as QEMU's `screendump` writes it, when the run ends, whatever ended it.
/// Direct-colour modes only (15, 16, 24 and 32 bits a pixel, QEMU's layouts: 0x00RRGGBB
/// little-endian at 32, B, G, R bytes at 24, 5:6:5 and 5:5:5 at 16 and 15); a display
/// that is disabled (VGA text) or in a palette mode (4 or 8 bits: the DAC is not
/// modelled) gets one line on stderr and nothing written.
enum Screendump {
    /// `--screendump`'s output, opened before the guest runs: a bad target is refused first.
    static func sink(_ target: SerialTarget) throws(LauncherError) -> OutputSink? {
        guard target != .none else { return nil }
        return try OutputSink(target, device: "screen dump", flag: "--screendump",
                              fifoNote: "the picture is written once, as the run ends, and does not wait for a reader")
    }

    /// Why the display has no picture to write, or nil.
    static func refusal(_ g: BochsDisplay.Geometry?) -> String? {
        guard let g else { return "the display is disabled (VGA text mode; see --vga-text)" }
        guard g.bitsPerPixel >= 15 else { return "the display is in a \(g.bitsPerPixel)-bit palette mode, and the palette (the DAC) is not modelled" }
        return nil
    }

    /// Writes the picture of `display` to `sink`, a row at a time; one line on stderr instead
    /// when it has none.
    static func write(_ display: BochsDisplay, to sink: OutputSink) {
        let g = display.geometry
        if let why = refusal(g) { return ExitStats.err("vmm: --screendump: nothing written: \(why)\n") }
        guard let g else { return }
        let bytesPerPixel = (g.bitsPerPixel + 7) / 8
        // `BochsDisplay.fixUp` keeps every visible line inside the memory; checked again
        // here, as a picture is never read past it.
        let (rows, o1) = g.height.multipliedReportingOverflow(by: g.lineLength)
        let (end, o2) = g.start.addingReportingOverflow(rows)
        guard !o1, !o2, end <= BochsDisplay.vramSize, g.width * bytesPerPixel <= g.lineLength else {
            return ExitStats.err("vmm: --screendump: nothing written: the mode \(g.width)x\(g.height) does not fit the display's memory\n")
        }
        sink.emit(Array("P6\n\(g.width) \(g.height)\n255\n".utf8))
        var row = [UInt8](repeating: 0, count: g.width * 3)
        for y in 0..<g.height {
            guard let line = display.vramBytes(offset: g.start + y * g.lineLength, count: g.width * bytesPerPixel) else { return }
            for x in 0..<g.width {
                (row[3 * x], row[3 * x + 1], row[3 * x + 2]) = pixel(line, x, bits: g.bitsPerPixel)
            }
            sink.emit(row)
        }
    }

    /// Pixel `x` of a line at `bits` a pixel as 8-bit red, green, blue.
    static func pixel(_ line: UnsafeRawBufferPointer, _ x: Int, bits: Int) -> (UInt8, UInt8, UInt8) {
        switch bits {
        case 32, 24:
            let p = x * (bits / 8)
            return (line[p + 2], line[p + 1], line[p])
        default:
            let v = UInt16(line[2 * x]) | UInt16(line[2 * x + 1]) << 8
            let b5 = UInt8(v & 0x1f)
            if bits == 16 {
                let r5 = UInt8(v >> 11), g6 = UInt8((v >> 5) & 0x3f)
                return (r5 << 3 | r5 >> 2, g6 << 2 | g6 >> 4, b5 << 3 | b5 >> 2)
            }
            let r5 = UInt8((v >> 10) & 0x1f), g5 = UInt8((v >> 5) & 0x1f)
            return (r5 << 3 | r5 >> 2, g5 << 3 | g5 >> 2, b5 << 3 | b5 >> 2)
        }
    }
}
