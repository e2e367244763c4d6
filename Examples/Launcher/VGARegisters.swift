import Synchronization
import VMMKit

/// The few VGA registers text-mode guests written for QEMU touch, as QEMU's VGA holds
/// them after SeaBIOS set mode 3 (80x25 colour text): the CRT controller's index and
/// data ports (0x3d4, 0x3d5; the hardware cursor at registers 0x0e-0x0f, its shape at
/// 0x0a-0x0b, the start address at 0x0c-0x0d), the miscellaneous output register
/// (written at 0x3c2, read at 0x3cc; bit 0 selects the colour ports 0x3dx, clear the
/// monochrome 0x3bx) and input status 1 (0x3da), whose vertical-retrace and display
/// bits flip on every read as QEMU's do, so a guest that waits for a retrace
/// (`while (inb(0x3da) & 8); while (!(inb(0x3da) & 8));`) goes on instead of spinning
/// on unassigned I/O's all-ones for ever. The ports of the range the miscellaneous
/// register does not select read 0xff and ignore writes, as QEMU's. With CR11 bit 7 set
/// (as mode 3 leaves it) registers 0-7 ignore writes, except CR7's bit 4, as QEMU's.
///
/// Only registers 0x00-0x18 exist; another index reads 0xff and ignores writes. The
/// sequencer, graphics and attribute controllers and feature control are
/// `VGAControllers`, under the same lock (a read of input status 1 resets the attribute
/// controller's flip-flop); the DAC is `VGADAC`. None of them changes what
/// `VGATextScreen` reads; `VGAGraphics` derives a 256-colour mode's picture from them.
/// Registered where no plugin holds any of the ports; in snapshots (`vga`, and
/// `vga-controllers` when they are not as mode 3 left them).
final class VGARegisters: BytePortDevice {
    static let colorBase: UInt16 = 0x3d0, monoBase: UInt16 = 0x3b0
    static let miscWrite: UInt16 = 0x3c2, miscRead: UInt16 = 0x3cc
    /// Mode 3's CRT controller registers 0x00-0x18 and miscellaneous output, as BIOSes set them.
    static let mode3CRTC: [UInt8] = [0x5f, 0x4f, 0x50, 0x82, 0x55, 0x81, 0xbf, 0x1f, 0x00, 0x4f, 0x0d, 0x0e, 0x00, 0x00, 0x00, 0x00,
                                     0x9c, 0x8e, 0x8f, 0x28, 0x1f, 0x96, 0xb9, 0xa3, 0xff]
    static let mode3Misc: UInt8 = 0x67
    /// Input status 1's bits that flip on each read: vertical retrace, display disabled.
    static let retraceBits: UInt8 = 0x09

    struct Registers: Equatable {
        var misc = VGARegisters.mode3Misc
        var index: UInt8 = 0
        var status: UInt8 = 0
        var crtc = VGARegisters.mode3CRTC
        var controllers = VGAControllers()
    }

    private let state = Mutex(Registers())

    var registers: Registers { state.withLock { $0 } }
    func restore(_ r: Registers) { state.withLock { $0 = r } }

    /// Runs `body` on the registers under the lock (`BytePortDevice`).
    func withRegisters(_ body: (inout Registers) -> Void) { state.withLock { body(&$0) } }

    /// The byte a read of `port` gives, from registers `r` (under the lock).
    static func read(_ port: UInt16, _ r: inout Registers) -> UInt8 {
        switch port {
        case Self.miscRead: return r.misc
        case Self.miscWrite: return 0 // input status 0
        case _ where VGAControllers.ports.contains(port): return r.controllers.read(port)
        default: break
        }
        guard let register = Self.register(port, r.misc) else { return 0xff }
        switch register {
        case 4: return r.index
        case 5: return Int(r.index) < r.crtc.count ? r.crtc[Int(r.index)] : 0xff
        case 0xa:
            r.status ^= Self.retraceBits
            r.controllers.attributeData = false
            return r.status
        default: return 0xff
        }
    }

    /// A write of `value` to `port`, into registers `r` (under the lock).
    static func write(_ port: UInt16, _ value: UInt8, _ r: inout Registers) {
        if port == Self.miscWrite { r.misc = value & ~0x10; return }
        if VGAControllers.ports.contains(port) { r.controllers.write(port, value); return }
        guard let register = Self.register(port, r.misc) else { return }
        switch register {
        case 4: r.index = value
        case 5:
            let i = Int(r.index)
            guard i < r.crtc.count else { return }
            if r.crtc[0x11] & 0x80 != 0, i <= 7 {
                if i == 7 { r.crtc[7] = r.crtc[7] & ~0x10 | value & 0x10 }
                return
            }
            r.crtc[i] = value
        case 0xa: r.controllers.featureControl = value & 0x10
        default: return
        }
    }

    /// `port`'s offset in the CRT controller's range the miscellaneous register selects
    /// (4 index, 5 data, 0xa input status 1); nil in the other range.
    static func register(_ port: UInt16, _ misc: UInt8) -> UInt16? {
        let base = misc & 1 != 0 ? colorBase : monoBase
        guard port >= base, port - base < 0x10 else { return nil }
        return port - base
    }

    /// The ports it serves: 0x3c2, 0x3cc, each range's 0x4, 0x5 and 0xa, and the controllers'.
    static let ports: [UInt16] = [0x3c2, 0x3cc, 0x3d4, 0x3d5, 0x3da, 0x3b4, 0x3b5, 0x3ba] + VGAControllers.ports

    /// Registers `ports`; the caller has checked that no plugin holds any of them.
    func register(on dispatcher: ExitDispatcher) throws(VMMError) {
        try BytePorts.register(Self.ports, on: dispatcher, owner: "VGA registers (built-in)", device: self)
    }
}
