import Glibc
import VMMControl
import VMMKit

/// The Bochs display's picture as a binary PPM (P6, 8 bits a channel), as QEMU's
/// `screendump` writes it: `--screendump TARGET` when the run ends, whatever ended it,
/// and `PUT /vm/screendump` (`vmm ctl PATH screendump FILE`) while it runs. Direct-colour
/// modes (15, 16, 24 and 32 bits a pixel, QEMU's layouts: 0x00RRGGBB little-endian
/// at 32, B, G, R bytes at 24, 5:6:5 and 5:5:5 at 16 and 15) and 8 bits a pixel through
/// the DAC's palette (`VGADAC`); a display that is disabled (VGA text) or in the planar
/// 4-bit mode has none, nor an 8-bit one on a machine whose DAC a plugin took.
enum Screendump {
    /// `--screendump`'s output, opened before the guest runs: a bad target is refused first.
    static func sink(_ target: SerialTarget) throws(LauncherError) -> OutputSink? {
        guard target != .none else { return nil }
        return try OutputSink(target, device: "screen dump", flag: "--screendump",
                              fifoNote: "the picture is written once, as the run ends, and does not wait for a reader",
                              loss: "the picture is incomplete")
    }

    /// Why the display has no picture to write, or nil.
    static func refusal(_ g: BochsDisplay.Geometry?, dac: VGADAC?) -> String? {
        guard let g else { return "the display is disabled (VGA text mode; see --vga-text)" }
        guard g.bitsPerPixel != 4 else { return "the display is in the planar 4-bit mode, which is not modelled" }
        guard g.bitsPerPixel != 8 || dac != nil else { return "the display is in an 8-bit palette mode, and a plugin holds the DAC's ports (0x3c6-0x3c9)" }
        return nil
    }

    /// `--screendump`: the picture of `display` to `sink`; one line on stderr instead
    /// when it has none.
    static func write(_ display: BochsDisplay, dac: VGADAC?, to sink: OutputSink) {
        if let why = picture(display, dac: dac, { sink.emit($0); return true }) { ExitStats.err("vmm: --screendump: nothing written: \(why)\n") }
    }

    /// `PUT /vm/screendump`: the picture of `display` into the regular file at `path`
    /// (created or truncated). Anything else is refused rather than written: a FIFO some
    /// client holds open and never reads (or a device) would block the write, the API
    /// server's thread and the VMM's exit with it, for ever. `.conflict` when
    /// the display has none (nothing is created), `.badRequest` when the file cannot be
    /// opened or written. On the API server's thread, the vCPUs running or not.
    static func write(_ display: BochsDisplay, dac: VGADAC?, toFile path: String) throws(ControlError) {
        if let why = refusal(display.geometry, dac: dac) { throw .conflict(why) }
        let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NONBLOCK | O_NOCTTY, 0o644)
        guard fd >= 0 else {
            let error = errno
            // ENXIO: a FIFO nobody reads, or a socket; said as for one a client holds open
            // (below), not as "No such device or address".
            var st = stat()
            if error == ENXIO, stat(path, &st) == 0, st.st_mode & S_IFMT != S_IFREG {
                throw .badRequest("cannot write \(path): not a regular file (\(RegularFile.kind(st.st_mode)))")
            }
            throw .badRequest("cannot open \(path): \(String(cString: strerror(error)))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .badRequest("cannot write \(path): \(String(cString: strerror(errno)))") }
        guard st.st_mode & S_IFMT == S_IFREG else { throw .badRequest("cannot write \(path): not a regular file (\(RegularFile.kind(st.st_mode)))") }
        guard ftruncate(fd, 0) == 0 else { throw .badRequest("cannot write \(path): \(String(cString: strerror(errno)))") }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        var failure: String?
        let why = picture(display, dac: dac) { row in
            row.withUnsafeBytes { bytes in
                var done = 0
                while done < bytes.count {
                    let n = Glibc.write(fd, bytes.baseAddress! + done, bytes.count - done)
                    if n > 0 { done += n; continue }
                    if n < 0, errno == EINTR { continue }
                    failure = n < 0 ? String(cString: strerror(errno)) : "it took nothing"
                    return false
                }
                return true
            }
        }
        if let failure { throw .badRequest("cannot write \(path): \(failure)") }
        // The guest switched modes between the check and the picture.
        if let why { throw .conflict(why) }
    }

    /// The picture of `display`, handed to `emit` a part at a time (the header, then each
    /// row) until it returns false; the reason there is none instead (nothing emitted).
    static func picture(_ display: BochsDisplay, dac: VGADAC?, _ emit: ([UInt8]) -> Bool) -> String? {
        let g = display.geometry
        if let why = refusal(g, dac: dac) { return why }
        guard let g else { return nil }
        // The palette as it is now, and whether the display asked for an 8-bit DAC.
        let palette = dac?.registers ?? .init()
        let dac8 = display.registers.regs[BochsDisplay.Reg.enable] & BochsDisplay.Enable.dac8 != 0
        let bytesPerPixel = (g.bitsPerPixel + 7) / 8
        // `BochsDisplay.fixUp` keeps every visible line inside the memory; checked again
        // here, as a picture is never read past it.
        let (rows, o1) = g.height.multipliedReportingOverflow(by: g.lineLength)
        let (end, o2) = g.start.addingReportingOverflow(rows)
        guard !o1, !o2, end <= BochsDisplay.vramSize, g.width * bytesPerPixel <= g.lineLength else {
            return "the mode \(g.width)x\(g.height) does not fit the display's memory"
        }
        guard emit(Array("P6\n\(g.width) \(g.height)\n255\n".utf8)) else { return nil }
        var row = [UInt8](repeating: 0, count: g.width * 3)
        for y in 0..<g.height {
            guard let line = display.vramBytes(offset: g.start + y * g.lineLength, count: g.width * bytesPerPixel) else { return nil }
            for x in 0..<g.width {
                (row[3 * x], row[3 * x + 1], row[3 * x + 2]) = g.bitsPerPixel == 8
                    ? VGADAC.color(palette, line[x], dac8: dac8) : pixel(line, x, bits: g.bitsPerPixel)
            }
            guard emit(row) else { return nil }
        }
        return nil
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
