import Synchronization
import VMMKit

/// The VGA's DAC, its 256-colour palette, as QEMU's (`vga_ioport_read`/`write`): the
/// write index (0x3c8; the data port then takes red, green and blue, and the index moves
/// on after each third byte), the read index (0x3c7, which reads back the DAC state:
/// 0 after a write index, 3 after a read index), the data port (0x3c9) and the pixel
/// mask (0x3c6: reads 0xff, writes ignored, as QEMU's). Components are kept as written
/// (8 bits): a 6-bit DAC shows the low 6 (`color`), the Bochs display's 8-bit DAC
/// (`BochsDisplay.Enable.dac8`) all 8. It is what an 8-bit Bochs mode's and mode 13h's
/// pixels index (`Screendump`). Starts all black (SeaBIOS loads a mode's palette on INT
/// 10h, which a `-kernel` guest does not call). Registered with `VGARegisters`; in snapshots
/// (`vga-dac`, written when not as after a reset).
final class VGADAC: BytePortDevice {
    static let maskPort: UInt16 = 0x3c6, readIndexPort: UInt16 = 0x3c7, writeIndexPort: UInt16 = 0x3c8, dataPort: UInt16 = 0x3c9
    static let ports: [UInt16] = [maskPort, readIndexPort, writeIndexPort, dataPort]

    struct Registers: Equatable {
        var writeIndex: UInt8 = 0
        var readIndex: UInt8 = 0
        /// Which component of an entry the data port is at (0-2).
        var sub: UInt8 = 0
        /// 0 after a write index, 3 after a read index (0x3c7 reads it).
        var state: UInt8 = 0
        /// The components written so far of the entry being written.
        var cache: [UInt8] = [0, 0, 0]
        /// 256 entries of red, green, blue.
        var palette = [UInt8](repeating: 0, count: 768)
    }

    private let state = Mutex(Registers())

    var registers: Registers { state.withLock { $0 } }
    func restore(_ r: Registers) { state.withLock { $0 = r } }

    /// Runs `body` on the registers under the lock (`BytePortDevice`).
    func withRegisters(_ body: (inout Registers) -> Void) { state.withLock { body(&$0) } }

    /// The byte a read of `port` gives, from registers `r` (under the lock).
    static func read(_ port: UInt16, _ r: inout Registers) -> UInt8 {
        switch port {
        case Self.readIndexPort: return r.state
        case Self.writeIndexPort: return r.writeIndex
        case Self.dataPort:
            let v = r.palette[Int(r.readIndex) * 3 + Int(r.sub)]
            r.sub += 1
            if r.sub == 3 { (r.sub, r.readIndex) = (0, r.readIndex &+ 1) }
            return v
        default: return 0xff
        }
    }

    /// A write of `value` to `port`, into registers `r` (under the lock).
    static func write(_ port: UInt16, _ value: UInt8, _ r: inout Registers) {
        switch port {
        case Self.readIndexPort: (r.readIndex, r.sub, r.state) = (value, 0, 3)
        case Self.writeIndexPort: (r.writeIndex, r.sub, r.state) = (value, 0, 0)
        case Self.dataPort:
            r.cache[Int(r.sub)] = value
            r.sub += 1
            if r.sub == 3 {
                let at = Int(r.writeIndex) * 3
                r.palette[at..<at + 3] = r.cache[0..<3]
                (r.sub, r.writeIndex) = (0, r.writeIndex &+ 1)
            }
        default: break
        }
    }

    /// Entry `index` as 8-bit red, green, blue: all 8 bits with an 8-bit DAC, else the low
    /// 6 widened as QEMU's `c6_to_8`.
    static func color(_ r: Registers, _ index: UInt8, dac8: Bool) -> (UInt8, UInt8, UInt8) {
        func widen(_ v: UInt8) -> UInt8 {
            guard !dac8 else { return v }
            let c = v & 0x3f
            return c << 2 | (c & 1) << 1 | c & 1
        }
        let at = Int(index) * 3
        return (widen(r.palette[at]), widen(r.palette[at + 1]), widen(r.palette[at + 2]))
    }

    /// Why `r` (from a snapshot) is not a state this DAC reaches, or nil.
    static func refusal(_ r: Registers) -> String? {
        guard r.sub <= 2 else { return "vga-dac component \(r.sub) (0 to 2)" }
        guard r.state == 0 || r.state == 3 else { return "vga-dac state \(r.state) (0 or 3)" }
        guard r.cache.count == 3, r.palette.count == 768 else { return "vga-dac: a cache of \(r.cache.count) and a palette of \(r.palette.count) bytes" }
        return nil
    }

    /// Registers `ports`; the caller has checked that no plugin holds any of them.
    func register(on dispatcher: ExitDispatcher) throws(VMMError) {
        try BytePorts.register(Self.ports, on: dispatcher, owner: "VGA DAC (built-in)", device: self)
    }
}
