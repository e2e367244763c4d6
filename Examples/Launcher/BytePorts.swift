import VMMKit

/// A device of byte-wide registers behind `BytePorts`: its registers under one lock, read
/// and written a byte at a time by port.
protocol BytePortDevice: AnyObject, Sendable {
    /// What one access works on: the registers, or (`ParallelPort.Access`) the registers
    /// and what the access produced, handled once it ends.
    associatedtype Access
    /// Runs `body` on the registers under the device's lock.
    func withRegisters(_ body: (inout Access) -> Void)
    static func read(_ port: UInt16, _ r: inout Access) -> UInt8
    static func write(_ port: UInt16, _ value: UInt8, _ r: inout Access)
}

extension BytePortDevice {
    /// A byte read from `port`, under the lock (one byte: the guest's accesses come
    /// through `BytePorts.register`).
    func read(_ port: UInt16) -> UInt8 {
        var value: UInt8 = 0
        withRegisters { value = Self.read(port, &$0) }
        return value
    }

    /// A byte written to `port`, under the lock.
    func write(_ port: UInt16, _ value: UInt8) { withRegisters { Self.write(port, value, &$0) } }
}

/// Byte-wide device ports as QEMU splits wider accesses to them: each byte of a word or
/// dword access goes to the next port, lowest first (`outw(0x3d4, cursor << 8 | 0x0f)`
/// selects a CRT register and writes it in one), for `VGARegisters` and `VGADAC`.
enum BytePorts {
    /// Registers `ports`, each access's bytes through the device's `read` and `write` by
    /// port, the whole access under its lock, as QEMU's big lock holds for a whole exit:
    /// another vCPU's index cannot come between an `outw` to 0x3d4's index and its data
    /// (it did: a word read paired one register's index with another's data). The caller
    /// has checked that no plugin holds any of the ports.
    static func register<Device: BytePortDevice>(_ ports: [UInt16], on dispatcher: ExitDispatcher, owner: String,
                                                 device: Device) throws(VMMError) {
        for port in ports {
            try dispatcher.registerPIO(port: port, owner: owner) { io, _ in
                device.withRegisters { r in
                    for i in 0..<io.count {
                        if io.isWrite {
                            let value = io.element(i)
                            for k in 0..<io.size { Device.write(io.port &+ UInt16(k), UInt8(truncatingIfNeeded: value >> UInt32(k * 8)), &r) }
                        } else {
                            var value: UInt32 = 0
                            for k in 0..<io.size { value |= UInt32(Device.read(io.port &+ UInt16(k), &r)) << UInt32(k * 8) }
                            io.setElement(i, value)
                        }
                    }
                }
                return .handled
            }
        }
    }
}
