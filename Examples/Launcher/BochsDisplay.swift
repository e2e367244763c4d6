import Synchronization
import VMMKit

/// QEMU's `-vga std` beyond text mode (`vmm run --vga std`): the Bochs VBE "DISPI"
/// interface, as graphical kernels written for QEMU (OSDev's "Bochs VBE Extensions")
/// set a mode with it: an index port (0x1ce) and a data port (0x1cf, and 0x1d0 as on
/// QEMU's x86 machines), 16-bit accesses only (a byte or dword access reads all-ones
/// and its write is dropped, as QEMU's), and a 16 MiB linear framebuffer at 0xfd000000
/// (guest RAM the guest draws in with no exits; PCIHost's 00:02.0 names it in BAR 0).
///
/// The registers behave as QEMU's (`vbe_ioport_write_data`, `vbe_fixup_regs`): the ids
/// 0xb0c0-0xb0c5 (0xb0c5 after reset), a resolution up to 16000 x 12000 at 4, 8, 15,
/// 16, 24 or 32 bits per pixel (another depth becomes 8), every value clamped to what
/// the 16 MiB hold rather than refused (the interface has no way to say no), GETCAPS
/// (register 4 bit 1) reading the maxima, index 0xa the memory in 64 KiB units, and
/// enabling clearing the visible lines unless NOCLEARMEM. Not modelled: the banked
/// window at 0xa0000 (BANK is kept, masked to the memory's 256 banks, and has no
/// effect) and the VGA planes behind 4-bit modes; an 8-bit mode's pixels index the
/// DAC's palette (`VGADAC`). An enabled mode is written into the VGA's registers
/// (`programVGA`), as QEMU's. In snapshots (`bochs`).
final class BochsDisplay: @unchecked Sendable {
    static let indexPort: UInt16 = 0x1ce
    static let dataPorts: [UInt16] = [0x1cf, 0x1d0]
    static let framebufferAddress: UInt64 = 0xfd00_0000
    /// The framebuffer's memory region (snapshots name regions).
    static let regionName = "vga-vram"
    static let vramSize = 16 << 20
    static let maxXRes: UInt16 = 16000, maxYRes: UInt16 = 12000, maxBPP: UInt16 = 32
    static let firstID: UInt16 = 0xb0c0, lastID: UInt16 = 0xb0c5

    /// Register numbers (the index port's values); `videoMemory64K` is read-only, not kept.
    enum Reg {
        static let id = 0, xres = 1, yres = 2, bpp = 3, enable = 4, bank = 5
        static let virtWidth = 6, virtHeight = 7, xOffset = 8, yOffset = 9
        static let count = 10
        static let videoMemory64K = 0xa
    }

    /// ENABLE's bits.
    enum Enable {
        static let enabled: UInt16 = 0x01, getCaps: UInt16 = 0x02, dac8: UInt16 = 0x20, lfb: UInt16 = 0x40, noClearMem: UInt16 = 0x80
    }

    struct Registers: Equatable {
        var index: UInt16 = 0
        var regs = [UInt16](repeating: 0, count: Reg.count)

        init() { regs[Reg.id] = BochsDisplay.lastID }
        init(index: UInt16, regs: [UInt16]) { (self.index, self.regs) = (index, regs) }

        var enabled: Bool { regs[Reg.enable] & Enable.enabled != 0 }
    }

    /// What the display shows while enabled: derived from the registers as QEMU's
    /// `vbe_line_offset` and `vbe_start_addr`, always inside the memory.
    struct Geometry: Equatable {
        var width: Int, height: Int, bitsPerPixel: Int, lineLength: Int, start: Int
    }

    private let state = Mutex(Registers())
    /// The framebuffer's host mapping (the `vga-vram` region), valid while the VM is.
    private let vram: UnsafeMutableRawPointer
    /// The VGA's registers, which an enabled mode reprograms as QEMU's do (`programVGA`);
    /// nil when a plugin holds them.
    private let vga: VGARegisters?

    /// `vram` is `vramSize` bytes of the VM's memory at `framebufferAddress`.
    init(vram: UnsafeMutableRawPointer, vga: VGARegisters? = nil) { (self.vram, self.vga) = (vram, vga) }

    var registers: Registers { state.withLock { $0 } }
    /// What the display shows now; nil while disabled.
    var geometry: Geometry? { state.withLock { Self.geometry($0.regs) } }

    /// `count` bytes of the framebuffer from `offset`, nil past its end. For `Screendump`,
    /// with the vCPUs stopped.
    func vramBytes(offset: Int, count: Int) -> UnsafeRawBufferPointer? {
        guard offset >= 0, count >= 0, count <= Self.vramSize, offset <= Self.vramSize - count else { return nil }
        return UnsafeRawBufferPointer(start: vram + offset, count: count)
    }
    func restore(_ r: Registers) { state.withLock { $0 = r } }

    /// A 16-bit read of the index (`isIndex`) or data port.
    func read(isIndex: Bool) -> UInt16 {
        state.withLock { r in
            if isIndex { return r.index }
            let i = Int(r.index)
            if i < Reg.count {
                if r.regs[Reg.enable] & Enable.getCaps != 0 {
                    switch i {
                    case Reg.xres: return Self.maxXRes
                    case Reg.yres: return Self.maxYRes
                    case Reg.bpp: return Self.maxBPP
                    default: break
                    }
                }
                return r.regs[i]
            }
            return i == Reg.videoMemory64K ? UInt16(Self.vramSize >> 16) : 0
        }
    }

    /// A 16-bit write to the index (`isIndex`) or data port.
    func write(isIndex: Bool, _ value: UInt16) {
        state.withLock { r in
            if isIndex { r.index = value; return }
            let i = Int(r.index)
            switch i {
            case Reg.id:
                if (Self.firstID...Self.lastID).contains(value) { r.regs[i] = value }
            case Reg.xres, Reg.yres, Reg.bpp, Reg.virtWidth, Reg.xOffset, Reg.yOffset:
                r.regs[i] = value
                Self.fixUp(&r.regs)
                programVGA(r.regs)
            case Reg.bank:
                r.regs[i] = value & UInt16((Self.vramSize >> 16) - 1)
            case Reg.enable:
                if value & Enable.enabled != 0, !r.enabled {
                    r.regs[Reg.virtWidth] = 0
                    r.regs[Reg.xOffset] = 0
                    r.regs[Reg.yOffset] = 0
                    r.regs[Reg.enable] |= Enable.enabled
                    Self.fixUp(&r.regs)
                    programVGA(r.regs)
                    // Under the lock: a screendump on another thread, which reads the mode
                    // under it, then sees the cleared lines.
                    if value & Enable.noClearMem == 0, let g = Self.geometry(r.regs) {
                        vram.initializeMemory(as: UInt8.self, repeating: 0, count: min(g.height * g.lineLength, Self.vramSize))
                    }
                }
                r.regs[i] = value
            default:
                break
            }
        }
    }

    /// Writes an enabled mode `regs` into the VGA's registers (under the display's lock;
    /// the VGA's lock is never held around a call into the display).
    private func programVGA(_ regs: [UInt16]) {
        vga?.withRegisters { Self.programVGA(&$0, regs) }
    }

    /// QEMU's `vbe_update_vgaregs`: while enabled, the mode written into the VGA's
    /// registers as a BIOS would (graphics at 0xa0000, 256 colours or 4-bit planar, the
    /// CRT controller's width, height and pitch, no split screen, no double scan), past
    /// CR0-CR7's lock. So the VGA reads back a graphics mode, and has no text screen.
    /// (QEMU's chain-4 and plane mask go to a sequencer copy the guest never reads: not kept.)
    static func programVGA(_ v: inout VGARegisters.Registers, _ regs: [UInt16]) {
        guard let g = geometry(regs) else { return }
        v.controllers.graphics[6] = v.controllers.graphics[6] & ~0x0c | 0x05
        v.crtc[0x17] |= 3
        v.crtc[0x13] = UInt8(truncatingIfNeeded: g.lineLength >> 3)
        v.crtc[1] = UInt8(truncatingIfNeeded: Int(regs[Reg.xres] >> 3) - 1)
        let h = Int(regs[Reg.yres]) - 1 // at least 1 line (fixUp)
        v.crtc[0x12] = UInt8(truncatingIfNeeded: h)
        v.crtc[7] = v.crtc[7] & ~0x42 | UInt8(truncatingIfNeeded: (h >> 7) & 0x02 | (h >> 3) & 0x40) | 0x10
        v.crtc[0x18] = 0xff
        v.crtc[9] = (v.crtc[9] | 0x40) & ~0x9f
        let shift: UInt8 = regs[Reg.bpp] == 4 ? 0 : 2
        v.controllers.graphics[5] = v.controllers.graphics[5] & ~0x60 | shift << 5
    }

    /// Bits per pixel as the memory holds them (15 takes 16; another depth becomes 8).
    static func storedBits(_ bpp: UInt16) -> Int? {
        switch bpp {
        case 4, 8, 16, 24, 32: Int(bpp)
        case 15: 16
        default: nil
        }
    }

    /// Clamps the registers to what the memory holds, as QEMU's `vbe_fixup_regs`; only
    /// while enabled. Every product fits an `Int`: 16-bit registers, 32 bits a pixel.
    static func fixUp(_ r: inout [UInt16]) {
        guard r[Reg.enable] & Enable.enabled != 0 else { return }
        let bits: Int
        if let b = storedBits(r[Reg.bpp]) { bits = b } else { r[Reg.bpp] = 8; bits = 8 }
        r[Reg.xres] &= ~7
        if r[Reg.xres] == 0 { r[Reg.xres] = 8 }
        r[Reg.xres] = min(r[Reg.xres], maxXRes)
        r[Reg.virtWidth] &= ~7
        r[Reg.virtWidth] = max(min(r[Reg.virtWidth], maxXRes), r[Reg.xres])
        let lineLength = Int(r[Reg.virtWidth]) * bits / 8
        let maxY = vramSize / lineLength
        if r[Reg.yres] == 0 { r[Reg.yres] = 1 }
        r[Reg.yres] = UInt16(min(Int(min(r[Reg.yres], maxYRes)), maxY))
        r[Reg.xOffset] = min(r[Reg.xOffset], maxXRes)
        r[Reg.yOffset] = min(r[Reg.yOffset], maxYRes)
        let visible = Int(r[Reg.yres]) * lineLength
        if Int(r[Reg.xOffset]) * bits / 8 + Int(r[Reg.yOffset]) * lineLength + visible > vramSize {
            r[Reg.yOffset] = 0
            if Int(r[Reg.xOffset]) * bits / 8 + visible > vramSize { r[Reg.xOffset] = 0 }
        }
        // QEMU keeps the line count in the 16-bit register as it is, truncated.
        r[Reg.virtHeight] = UInt16(truncatingIfNeeded: maxY)
    }

    /// What an enabled display shows; nil while disabled.
    static func geometry(_ r: [UInt16]) -> Geometry? {
        guard r[Reg.enable] & Enable.enabled != 0, let bits = storedBits(r[Reg.bpp]) else { return nil }
        let lineLength = Int(r[Reg.virtWidth]) * bits / 8
        // QEMU's start address counts dwords.
        let start = (Int(r[Reg.xOffset]) * bits / 8 + Int(r[Reg.yOffset]) * lineLength) & ~3
        return Geometry(width: Int(r[Reg.xres]), height: Int(r[Reg.yres]), bitsPerPixel: Int(r[Reg.bpp]), lineLength: lineLength, start: start)
    }

    /// Why `r` (from a snapshot) is not a state this device reaches, or nil: an id out of
    /// range, a bank past the memory, or (enabled) registers `fixUp` would change.
    static func refusal(_ r: Registers) -> String? {
        guard r.regs.count == Reg.count else { return "bochs display: \(r.regs.count) registers, not \(Reg.count)" }
        guard (firstID...lastID).contains(r.regs[Reg.id]) else { return "bochs display: id \(hex(r.regs[Reg.id])) is not 0xb0c0-0xb0c5" }
        guard Int(r.regs[Reg.bank]) < vramSize >> 16 else { return "bochs display: bank \(r.regs[Reg.bank]) is past the memory's \(vramSize >> 16)" }
        var fixed = r.regs
        fixUp(&fixed)
        guard fixed == r.regs else { return "bochs display: the registers \(r.regs.map { hex($0) }) are not a mode the display holds" }
        return nil
    }

    /// Registers the ports; the caller has checked that no plugin holds any of them.
    func register(on dispatcher: ExitDispatcher) throws(VMMError) {
        for port in [Self.indexPort] + Self.dataPorts {
            let isIndex = port == Self.indexPort
            try dispatcher.registerPIO(port: port, owner: "Bochs VBE display (built-in)") { [self] io, _ in
                for i in 0..<io.count {
                    if io.size != 2 {
                        if !io.isWrite { io.setElement(i, ~0) }
                    } else if io.isWrite {
                        write(isIndex: isIndex, UInt16(truncatingIfNeeded: io.element(i)))
                    } else {
                        io.setElement(i, UInt32(read(isIndex: isIndex)))
                    }
                }
                return .handled
            }
        }
    }
}
