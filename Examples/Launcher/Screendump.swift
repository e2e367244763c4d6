import Glibc
import VMMControl
import VMMKit

/// The display's picture as a binary PPM (P6, 8 bits a channel), as QEMU's `screendump`
/// writes it: `--screendump TARGET` when the run ends, whatever ended it, and
/// `PUT /vm/screendump` (`vmm ctl PATH screendump FILE`) while it runs. The Bochs
/// display's modes while it is enabled (`--vga std`): direct colour (15, 16, 24 and 32
/// bits a pixel, QEMU's layouts: 0x00RRGGBB little-endian at 32, B, G, R bytes at 24,
/// 5:6:5 and 5:5:5 at 16 and 15) and 8 bits a pixel through the DAC's palette
/// (`VGADAC`); otherwise the VGA's own chained 256-colour modes, mode 13h's kind
/// (`VGAGraphics`), through the same palette. Text mode, the planar modes and a palette
/// mode on a machine whose DAC a plugin took have none.
enum Screendump {
    /// What a picture is taken of: the machine's displays (each nil when it has none or
    /// a plugin holds its ports) and the memory the VGA's window is in.
    struct Source {
        let display: BochsDisplay?
        let vga: VGARegisters?
        let dac: VGADAC?
        let memory: GuestMemory

        init(_ devices: BuiltInDevices, memory: GuestMemory) {
            (display, vga, dac, self.memory) = (devices.bochs, devices.vga, devices.dac, memory)
        }
    }

    /// What the display shows now.
    enum Frame {
        case bochs(BochsDisplay, BochsDisplay.Geometry)
        case vga(VGAGraphics)
    }

    /// `--screendump`'s output, opened before the guest runs: a bad target is refused first.
    static func sink(_ target: SerialTarget) throws(LauncherError) -> OutputSink? {
        guard target != .none else { return nil }
        return try OutputSink(target, device: "screen dump", flag: "--screendump",
                              fifoNote: "the picture is written once, as the run ends, and does not wait for a reader",
                              loss: "the picture is incomplete")
    }

    /// What `source` shows now, or why it has no picture. The Bochs display while it is
    /// enabled, else the VGA's registers, as QEMU's `vga_get_bpp` and `vga_update_display` choose.
    static func frame(_ source: Source) -> Result<Frame, VGAGraphics.Refusal> {
        let noDAC = VGAGraphics.Refusal(why: "the display is in an 8-bit palette mode, and a plugin holds the DAC's ports (0x3c6-0x3c9)")
        if let display = source.display, let g = display.geometry {
            guard g.bitsPerPixel != 4 else { return .failure(.init(why: "the display is in the planar 4-bit mode, which is not modelled")) }
            guard g.bitsPerPixel != 8 || source.dac != nil else { return .failure(noDAC) }
            return .success(.bochs(display, g))
        }
        guard let vga = source.vga else {
            return .failure(.init(why: "the machine has no display whose picture is modelled (a plugin holds the VGA's registers)"))
        }
        return VGAGraphics.mode(vga.registers).flatMap { m in source.dac == nil ? .failure(noDAC) : .success(.vga(m)) }
    }

    /// `--screendump`: the picture of `source` to `sink`; one line on stderr instead
    /// when it has none.
    static func write(_ source: Source, to sink: OutputSink) {
        if let why = picture(source, { sink.emit($0); return true }) { ExitStats.err("vmm: --screendump: nothing written: \(why)\n") }
    }

    /// `PUT /vm/screendump`: the picture of `source` into the regular file at `path`
    /// (created or truncated). Anything else is refused rather than written: a FIFO some
    /// client holds open and never reads (or a device) would block the write, the API
    /// server's thread and the VMM's exit with it, for ever. `.conflict` when
    /// the display has none (nothing is created), `.badRequest` when the file cannot be
    /// opened or written. On the API server's thread, the vCPUs running or not.
    static func write(_ source: Source, toFile path: String) throws(ControlError) {
        if case .failure(let refusal) = frame(source) { throw .conflict(refusal.why) }
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
        let why = picture(source) { row in
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

    /// The picture of `source`, handed to `emit` a part at a time (the header, then each
    /// row) until it returns false; the reason there is none instead (nothing emitted).
    static func picture(_ source: Source, _ emit: ([UInt8]) -> Bool) -> String? {
        let frame: Frame
        switch Self.frame(source) {
        case .success(let f): frame = f
        case .failure(let refusal): return refusal.why
        }
        // The palette as it is now, and whether the guest asked for an 8-bit DAC (the
        // Bochs display's ENABLE bit, whether or not the display is enabled, as QEMU's `dac_8bit`).
        let palette = source.dac?.registers ?? .init()
        let dac8 = (source.display?.registers.regs[BochsDisplay.Reg.enable] ?? 0) & BochsDisplay.Enable.dac8 != 0
        switch frame {
        case .bochs(let display, let g): return bochsPicture(display, g, palette: palette, dac8: dac8, emit)
        case .vga(let m): return vgaPicture(m, source.memory, palette: palette, dac8: dac8, emit)
        }
    }

    /// The Bochs display's picture in mode `g`.
    private static func bochsPicture(_ display: BochsDisplay, _ g: BochsDisplay.Geometry, palette: VGADAC.Registers, dac8: Bool,
                                     _ emit: ([UInt8]) -> Bool) -> String? {
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

    /// The VGA's picture in mode `m`: each byte of a line two pixels, through the palette
    /// (QEMU's `vga_draw_line8d2`), from the window in `memory`.
    private static func vgaPicture(_ m: VGAGraphics, _ memory: GuestMemory, palette: VGADAC.Registers, dac8: Bool,
                                   _ emit: ([UInt8]) -> Bool) -> String? {
        guard let window = try? memory.readBytes(m.windowBase, count: m.windowSize) else {
            return "the VGA's window at \(hex(m.windowBase)) is not in the guest's RAM"
        }
        guard emit(Array("P6\n\(m.width) \(m.height)\n255\n".utf8)) else { return nil }
        var row = [UInt8](repeating: 0, count: m.width * 3)
        for first in m.lines { // each inside the window (`VGAGraphics.mode`)
            for x in 0..<m.width {
                (row[3 * x], row[3 * x + 1], row[3 * x + 2]) = VGADAC.color(palette, window[first + x >> 1], dac8: dac8)
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
