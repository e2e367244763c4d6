import Synchronization
import VMMKit

/// QEMU's ISA DMA controllers (hw/dma/i8257.c) as its `pc` machine has them: the 8-bit
/// controller (channels 0-3) at 0x00-0x0f, the 16-bit one (channels 4-7) at 0xc0-0xdf with
/// its registers at even ports (each odd port answers as the even one below), the page
/// registers at 0x81-0x83, 0x87 and 0x89-0x8b, 0x8f (0x80 is the POST port); no high
/// pages, as `pc` leaves them off. Before, these ports were unassigned: a driver that
/// programs a channel (Linux's floppy driver before a read) was stopped by
/// `--strict-io`, and read its registers back as all-ones.
///
/// Only registers: no device here ever asks for a transfer (the floppy controller, on
/// channel 2, has no diskette to read), so addresses and counts stay as programmed, as in
/// QEMU with no transfer: a channel's address and count read back byte by byte through
/// the flip-flop, the mode, page, mask, command and the status's software requests are
/// kept. Byte registers through `BytePorts`, under one lock; no interrupt. In snapshots
/// (`isa-dma`, written when not as after a reset).
final class ISADMA: BytePortDevice {
    struct Channel: Equatable {
        /// Base address and count as written, low byte then high through the flip-flop.
        var baseAddress: UInt16 = 0, baseCount: UInt16 = 0
        /// The current address: the base address (in bytes: shifted left once on the 16-bit
        /// controller) from when its high byte was written.
        var address: UInt32 = 0
        var mode: UInt8 = 0, page: UInt8 = 0
    }

    struct Controller: Equatable {
        var command: UInt8 = 0, mask: UInt8 = 0xff, status: UInt8 = 0
        var flipFlop = false
        var channels = [Channel](repeating: .init(), count: 4)
    }

    typealias Registers = [Controller]

    /// Both controllers as after a reset (a snapshot writes no line for them).
    static let resetRegisters: Registers = [Controller(), Controller()]

    /// The 8-bit controller's ports, the 16-bit one's, and the page registers with their
    /// (controller, channel).
    static let ports: [UInt16] = Array(0x00...0x0f) + Array(0xc0...0xdf) + pages.keys.sorted()
    static let pages: [UInt16: (Int, Int)] = [0x81: (0, 2), 0x82: (0, 3), 0x83: (0, 1), 0x87: (0, 0),
                                              0x89: (1, 2), 0x8a: (1, 3), 0x8b: (1, 1), 0x8f: (1, 0)]
    /// Command bits QEMU does not take (a command with any of them is ignored).
    static let unsupportedCommands: UInt8 = 0xfb

    private let state = Mutex<Registers>(resetRegisters)

    func register(on dispatcher: ExitDispatcher) throws(VMMError) {
        try BytePorts.register(Self.ports, on: dispatcher, owner: "ISA DMA controllers (built-in)", device: self)
    }

    var registers: Registers { state.withLock { $0 } }
    func restore(_ r: Registers) { state.withLock { $0 = r } }
    func withRegisters(_ body: (inout Registers) -> Void) { state.withLock { body(&$0) } }

    /// The controller (0: 8-bit, 1: 16-bit), whether `port` is one of its channel registers
    /// (else a control register) and the register's number (0-7), for a controller port.
    static func decode(_ port: UInt16) -> (c: Int, channelRegister: Bool, index: Int)? {
        switch port {
        case 0x00...0x0f: return (0, port < 0x08, Int(port & 7))
        case 0xc0...0xdf: return (1, port < 0xd0, Int((port - 0xc0) >> 1 & 7))
        default: return nil
        }
    }

    static func read(_ port: UInt16, _ r: inout Registers) -> UInt8 {
        if let (c, ch) = pages[port] { return r[c].channels[ch].page }
        guard let (c, isChannel, i) = decode(port) else { return 0xff }
        if isChannel {
            let shift = UInt32(c), high = r[c].flipFlop
            r[c].flipFlop.toggle()
            let channel = r[c].channels[i >> 1]
            // No transfer ever moved the channel: the count is as written, the address as
            // its high byte's write left it.
            let value = i & 1 != 0 ? UInt32(channel.baseCount) << shift : channel.address
            return UInt8(truncatingIfNeeded: value >> (shift + (high ? 8 : 0)))
        }
        switch i {
        case 0:
            let status = r[c].status
            r[c].status &= 0xf0
            return status
        case 1: return r[c].mask
        default: return 0
        }
    }

    static func write(_ port: UInt16, _ v: UInt8, _ r: inout Registers) {
        if let (c, ch) = pages[port] { return r[c].channels[ch].page = v }
        guard let (c, isChannel, i) = decode(port) else { return }
        if isChannel {
            let high = r[c].flipFlop
            r[c].flipFlop.toggle()
            var channel = r[c].channels[i >> 1]
            let old = i & 1 != 0 ? channel.baseCount : channel.baseAddress
            let new = high ? old & 0xff | UInt16(v) << 8 : old & 0xff00 | UInt16(v)
            if i & 1 != 0 { channel.baseCount = new } else { channel.baseAddress = new }
            if high { channel.address = UInt32(channel.baseAddress) << UInt32(c) }
            r[c].channels[i >> 1] = channel
            return
        }
        switch i {
        case 0 where v == 0 || v & unsupportedCommands == 0: r[c].command = v
        case 1: // a software request: DREQ set or cleared, the channel's terminal count cleared
            let bit = UInt8(1) << (v & 3)
            r[c].status = (v & 4 != 0 ? r[c].status | bit << 4 : r[c].status & ~(bit << 4)) & ~bit
        case 2: r[c].mask = v & 4 != 0 ? r[c].mask | 1 << (v & 3) : r[c].mask & ~(1 << (v & 3))
        case 3: r[c].channels[Int(v & 3)].mode = v
        case 4: r[c].flipFlop = false
        case 5: // master clear
            (r[c].flipFlop, r[c].mask, r[c].status, r[c].command) = (false, 0xff, 0, 0)
        case 6: r[c].mask = 0
        case 7: r[c].mask = v
        default: break
        }
    }
}

/// The line in the `launcher-devices` blob: `isa-dma`, then for each controller (8-bit,
/// then 16-bit) its command, mask, status and flip-flop (0 or 1), then for each of its
/// channels the base address, base count, current address, mode and page, all in hex
/// (Docs/SnapshotFormat.md). Written only when not as after a reset.
extension ISADMA {
    static let blobWords = 1 + 2 * (4 + 4 * 5)

    static func blobLine(_ r: Registers) -> String {
        var words = ["isa-dma"]
        for c in r {
            words += [hex(c.command), hex(c.mask), hex(c.status), c.flipFlop ? "1" : "0"]
            for ch in c.channels { words += [hex(ch.baseAddress), hex(ch.baseCount), hex(ch.address), hex(ch.mode), hex(ch.page)] }
        }
        return words.joined(separator: " ")
    }

    /// `words` (the line split at spaces, `isa-dma` first, `blobWords` of them), every value checked.
    static func decodeBlob(_ words: [Substring], _ bad: (String) -> LauncherError) throws(LauncherError) -> Registers {
        var at = 1
        func next<T: FixedWidthInteger & UnsignedInteger>(_ what: String, _: T.Type) throws(LauncherError) -> T {
            defer { at += 1 }
            guard let v = BuiltInDeviceState.hexValue(words[at], T.self) else { throw bad("isa-dma \(what) \(String(words[at]).quotedForMessage)") }
            return v
        }
        var r: Registers = []
        for n in 0..<2 {
            var c = Controller()
            c.command = try next("controller \(n) command", UInt8.self)
            c.mask = try next("controller \(n) mask", UInt8.self)
            c.status = try next("controller \(n) status", UInt8.self)
            guard words[at] == "0" || words[at] == "1" else { throw bad("isa-dma controller \(n) flip-flop \(String(words[at]).quotedForMessage) (0 or 1)") }
            c.flipFlop = words[at] == "1"
            at += 1
            guard c.status & 0x0f == 0 else { throw bad("isa-dma controller \(n) status \(hex(c.status)) (no transfer ever reaches a terminal count)") }
            guard c.command == 0 || c.command & unsupportedCommands == 0 else { throw bad("isa-dma controller \(n) command \(hex(c.command))") }
            for k in 0..<4 {
                var ch = Channel()
                ch.baseAddress = try next("channel \(n * 4 + k) base address", UInt16.self)
                ch.baseCount = try next("channel \(n * 4 + k) base count", UInt16.self)
                ch.address = try next("channel \(n * 4 + k) address", UInt32.self)
                ch.mode = try next("channel \(n * 4 + k) mode", UInt8.self)
                ch.page = try next("channel \(n * 4 + k) page", UInt8.self)
                guard ch.address <= UInt32(0xffff) << UInt32(n), ch.address & UInt32(n) == 0, ch.mode & 3 == UInt8(k) || ch.mode == 0 else {
                    throw bad("isa-dma channel \(n * 4 + k) address \(hex(ch.address)) or mode \(hex(ch.mode)) (an address of 16 bits, even and 17 on the 16-bit controller; the mode naming its channel)")
                }
                c.channels[k] = ch
            }
            r.append(c)
        }
        return r
    }
}
