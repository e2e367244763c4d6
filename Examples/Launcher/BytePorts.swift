import VMMKit

/// Byte-wide device ports as QEMU splits wider accesses to them: each byte of a word or
/// dword access goes to the next port, lowest first (`outw(0x3d4, cursor << 8 | 0x0f)`
/// selects a CRT register and writes it in one), for `VGARegisters` and `VGADAC`.
enum BytePorts {
    /// Registers `ports`, each access's bytes through `read` and `write` by port; the
    /// caller has checked that no plugin holds any of them.
    static func register(_ ports: [UInt16], on dispatcher: ExitDispatcher, owner: String,
                         read: @escaping @Sendable (UInt16) -> UInt8, write: @escaping @Sendable (UInt16, UInt8) -> Void) throws(VMMError) {
        for port in ports {
            try dispatcher.registerPIO(port: port, owner: owner) { io, _ in
                for i in 0..<io.count {
                    if io.isWrite {
                        let value = io.element(i)
                        for k in 0..<io.size { write(io.port &+ UInt16(k), UInt8(truncatingIfNeeded: value >> UInt32(k * 8))) }
                    } else {
                        var value: UInt32 = 0
                        for k in 0..<io.size { value |= UInt32(read(io.port &+ UInt16(k))) << UInt32(k * 8) }
                        io.setElement(i, value)
                    }
                }
                return .handled
            }
        }
    }
}
