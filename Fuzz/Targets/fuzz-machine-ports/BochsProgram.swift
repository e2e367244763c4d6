import FuzzDriver

/// One framebuffer for every input (16 MiB allocated once, not per run).
nonisolated(unsafe) let bochsVRAM = UnsafeMutableRawPointer.allocate(byteCount: BochsDisplay.vramSize, alignment: 4096)

/// The Bochs VBE display (`BochsDisplay`) under a program of the input's bytes, read as
/// (op, low, high) triples: op bit 0 the data port (else the index), bit 1 a write of
/// high << 8 | low (else a read), bit 7 a save and restore into a new display through the
/// snapshot blob. After every step its registers are a state a snapshot restores
/// (`refusal` nil), what an enabled display shows lies inside its 16 MiB, the state
/// reads back through the blob, and the VGA registers an enabled mode reprograms are
/// ones a snapshot restores, whose picture and text layout stay in bounds.
func bochsProgram(_ input: UnsafeBufferPointer<UInt8>) {
    let vga = VGARegisters()
    var display = BochsDisplay(vram: bochsVRAM, vga: vga)
    for at in stride(from: 0, to: input.count - 2, by: 3) {
        let op = input[at], value = UInt16(input[at + 2]) << 8 | UInt16(input[at + 1])
        if op & 0x80 != 0 {
            let saved = display.registers
            do throws(LauncherError) {
                let back = try BuiltInDeviceState.decode(BuiltInDeviceState(bochs: saved).encoded(), version: 1, where: "fuzz")
                check(back.bochs == saved, "Bochs: snapshot round trip")
            } catch {
                check(false, "Bochs: a state the display holds is refused at restore: \(error.message)")
            }
            display = BochsDisplay(vram: bochsVRAM, vga: vga)
            display.restore(saved)
        } else if op & 2 != 0 {
            display.write(isIndex: op & 1 == 0, value)
        } else {
            _ = display.read(isIndex: op & 1 == 0)
        }
        let r = display.registers
        check(BochsDisplay.refusal(r) == nil, "Bochs: registers \(r.regs) refused: \(BochsDisplay.refusal(r) ?? "")")
        if let g = display.geometry {
            let bytes = (g.bitsPerPixel + 7) / 8
            check(g.width >= 8 && g.height >= 1 && g.width * bytes <= g.lineLength, "Bochs: \(g)")
            check(g.start >= 0 && g.start + g.height * g.lineLength <= BochsDisplay.vramSize, "Bochs: \(g) runs past the memory")
            check(vga.registers.controllers.graphics[6] & 1 == 1, "Bochs: an enabled mode left the VGA in text mode")
        }
        let v = vga.registers
        checkGraphics(v)
        do throws(LauncherError) {
            let back = try BuiltInDeviceState.decode(BuiltInDeviceState(vga: v).encoded(), version: 1, where: "fuzz")
            check(back.vga == v, "Bochs: the VGA registers' snapshot round trip")
        } catch {
            check(false, "Bochs: VGA registers an enabled mode left are refused at restore: \(error.message)")
        }
    }
}
