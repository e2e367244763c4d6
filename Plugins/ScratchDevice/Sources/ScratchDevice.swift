import Synchronization
import VMMPluginKit

/// A scratch register file, the Swift example plugin: sixteen 32-bit registers the
/// guest reads and writes through two windows onto the same storage.
/// - PIO: port `port + i` (i < 16) is register i; a write of n bytes replaces its low
///   n bytes, a read returns them. Port `port + 16` is the fault port: a write makes
///   the handler fail (to exercise the failure path), with the value in the message.
/// - MMIO: `[mmio, mmio + 64)` is the registers as little-endian bytes.
/// Config: `port=0x540,mmio=0xe0001000` (the defaults; the MMIO window in the hole below 4 GiB that
/// RAM never reaches, whatever `--memory`: RAM under 3.5 GiB lies whole below the hole,
/// as QEMU's, so 0xd0001000 was RAM from 3.25 GiB); `mmio=0` disables MMIO.
final class ScratchDevice: VMMPlugin {
    static let id = "org.vmmkit.scratch-device"
    static let registerCount = 16
    /// The registers as bytes; handlers may run on several vCPU threads at once.
    private let bytes = Mutex<[UInt8]>(Array(repeating: 0, count: registerCount * 4))

    init(host: PluginServices, config: PluginConfig) throws {
        try config.allowOnly(["port", "mmio"], plugin: Self.id)
        // 0x540: clear of the launcher's fw_cfg (0x510, 0x511) and of QEMU's pvpanic (0x505).
        let port = try config.port("port", default: 0x540, count: Self.registerCount + 1, plugin: Self.id)
        let mmio = try config.integer("mmio", default: 0xe000_1000, plugin: Self.id)
        guard mmio <= UInt64.max - UInt64(Self.registerCount * 4) else {
            throw VMMPluginError("\(Self.id): bad value '\(config["mmio"] ?? "")' for key 'mmio' (the 64 register bytes run past 2^64)")
        }
        try host.registerPIO(port: port, count: UInt16(Self.registerCount + 1), name: "scratch-pio") {
            [unowned(unsafe) self] io in try pio(io, base: port) // the host destroys us only after the VM stopped
        }
        if mmio != 0 {
            try host.registerMMIO(address: mmio, length: UInt64(Self.registerCount * 4), name: "scratch-mmio") {
                [unowned(unsafe) self] access in self.mmio(access, base: mmio)
            }
        }
        host.log(.debug, "scratch registers on port 0x\(String(port, radix: 16)), mmio 0x\(String(mmio, radix: 16))")
    }

    private func pio(_ io: PIOExit, base: UInt16) throws -> PluginVerdict {
        let index = Int(io.port - base)
        if index == Self.registerCount {
            guard io.isWrite else { io.value = 0; return .handled }
            throw VMMPluginError("guest wrote 0x\(String(io.value, radix: 16)) to the fault port")
        }
        bytes.withLock { regs in
            let offset = index * 4
            for element in 0..<io.count {
                if io.isWrite {
                    let value = io.element(element)
                    for i in 0..<io.size { regs[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(i))) }
                } else {
                    var value: UInt32 = 0
                    for i in (0..<io.size).reversed() { value = value << 8 | UInt32(regs[offset + i]) }
                    io.setElement(element, value)
                }
            }
        }
        return .handled
    }

    private func mmio(_ access: MMIOExit, base: UInt64) -> PluginVerdict {
        let offset = Int(access.address - base)
        let length = min(access.length, Self.registerCount * 4 - offset)
        bytes.withLock { regs in
            if access.isWrite {
                let value = access.data
                for i in 0..<length { regs[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
            } else {
                var value: UInt64 = 0
                for i in (0..<length).reversed() { value = value << 8 | UInt64(regs[offset + i]) }
                access.data = value
            }
        }
        return .handled
    }
}

/// ABI 1.2 state (snapshot and restore), version 1: the 64 register bytes. Any contents
/// are valid (the guest may write any value); a blob of another length is refused, and
/// the thrown error's text is the host's message for it.
extension ScratchDevice: PluginStateful {
    var stateVersion: UInt32 { 1 }

    func saveState() throws -> [UInt8] { bytes.withLock { $0 } }

    func restoreState(_ blob: [UInt8], version: UInt32) throws {
        guard blob.count == Self.registerCount * 4 else {
            throw VMMPluginError("\(Self.id): a state of \(blob.count) bytes; version 1 has \(Self.registerCount * 4)")
        }
        bytes.withLock { $0 = blob }
    }
}
