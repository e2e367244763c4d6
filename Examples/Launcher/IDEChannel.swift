import VMMKit

/// What the IDE channels share, whatever hangs on them (`ATADisk` on the primary,
/// `ATAPIDrive` on the secondary, or nothing): the ports, the byte registers as QEMU's
/// portio splits accesses to them, and the empty channel.
enum IDEChannel {
    /// A channel's eight task-file ports at `base` and its control port, one handler for
    /// both (the disk's, the CD-ROM drive's).
    static func register(on dispatcher: ExitDispatcher, base: UInt16, control: UInt16, owners: (String, String),
                         _ access: @escaping (PIOAccess) -> Void) throws(VMMError) {
        let handler: ExitDispatcher.PIOHandler = { io, _ in access(io); return .handled }
        try dispatcher.registerPIO(port: base, count: 8, owner: owners.0, handler)
        try dispatcher.registerPIO(port: control, owner: owners.1, handler)
    }

    /// Every element of an access (a `rep insw` has many) as one read or write.
    @inline(__always)
    static func eachElement(_ io: PIOAccess, read: (UInt16, Int) -> UInt32, write: (UInt16, Int, UInt32) -> Void) {
        for i in 0..<io.count {
            if io.isWrite { write(io.port, io.size, io.element(i)) } else { io.setElement(i, read(io.port, io.size)) }
        }
    }

    /// One guest read of `size` bytes (1, 2 or 4) at `port` of the channel at `base` and
    /// `control`: the data port (register 0) moves 2 or 4 bytes through `data`; the rest
    /// are byte registers (`byteRegisters`) read through `register` (8: the control port).
    @inline(__always)
    static func read(_ port: UInt16, size: Int, base: UInt16, control: UInt16,
                     data: (Int) -> UInt32, register: (Int) -> UInt8) -> UInt32 {
        let r = port == control ? 8 : Int(port &- base)
        if r == 0, size >= 2 { return data(min(size, 4)) }
        return byteRegisters(r, size: size, register)
    }

    /// One guest write, as `read` splits it: the data port's 2 or 4 bytes through `data`;
    /// a byte register's byte, or a 2-byte write's two in turn (none past register 7),
    /// through `register`; a 4-byte write elsewhere goes nowhere, as no handler takes it.
    @inline(__always)
    static func write(_ port: UInt16, size: Int, _ value: UInt32, base: UInt16, control: UInt16,
                      data: (UInt32, Int) -> Void, register: (Int, UInt8) -> Void) {
        let r = port == control ? 8 : Int(port &- base)
        if r == 0, size >= 2 { return data(value, min(size, 4)) }
        guard size <= 2 else { return }
        register(r, UInt8(truncatingIfNeeded: value))
        if size == 2, r < 7 { register(r + 1, UInt8(truncatingIfNeeded: value >> 8)) }
    }

    /// A channel with no drive (`base`-`base+7` and `control`), as QEMU's `pc` machine has
    /// the primary without `-hda`: every register and the alternate status read 0 (the
    /// data port's bytes all-ones), writes and commands go nowhere. A driver that tests
    /// the status for 0 finds no disk; on unassigned ports it read 0xff, "busy", and a
    /// driver that only tests for 0 waited for ever (or `--strict-io` stopped the guest).
    /// Nothing to save in a snapshot.
    static func registerEmpty(on dispatcher: ExitDispatcher, base: UInt16, control: UInt16, name: String) throws(VMMError) {
        let handler: ExitDispatcher.PIOHandler = { io, _ in
            guard !io.isWrite else { return .handled }
            for i in 0..<io.count { io.setElement(i, emptyRead(io.port == control ? 8 : Int(io.port &- base), size: io.size)) }
            return .handled
        }
        try dispatcher.registerPIO(port: base, count: 8, owner: "IDE \(name) channel, empty (built-in)", handler)
        try dispatcher.registerPIO(port: control, owner: "IDE \(name) channel control, empty (built-in)", handler)
    }

    /// A read of an empty channel's register (0-7, 8 the control port): the data port's 2-
    /// and 4-byte reads see no DRQ, 0, its byte reads 0xff; the rest as `byteRegisters`.
    static func emptyRead(_ register: Int, size: Int) -> UInt32 {
        register == 0 && size >= 2 ? 0 : byteRegisters(register, size: size) { $0 == 0 ? 0xff : 0 }
    }

    /// A read of `size` bytes at byte register `register` (0-7 the task file, 8 the
    /// control port), as QEMU's portio makes it of byte registers: a byte, two bytes in
    /// turn (the second all-ones past the block's last register, 7 or the control port),
    /// or all-ones for 4 bytes, which no handler takes.
    static func byteRegisters(_ register: Int, size: Int, _ byte: (Int) -> UInt8) -> UInt32 {
        switch size {
        case 1: return UInt32(byte(register))
        case 2:
            let low = UInt32(byte(register))
            return register == 7 || register == 8 ? 0xff00 | low : low | UInt32(byte(register + 1)) << 8
        default: return 0xffff_ffff
        }
    }
}
