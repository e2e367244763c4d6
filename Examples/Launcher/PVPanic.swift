import VMMKit

/// QEMU's ISA pvpanic (`-device pvpanic`, docs/specs/pvpanic.rst) on port 0x505, with
/// `--pvpanic`: a read gives the events it recognises (bit 0 "panicked, the host
/// handles it", bit 1 "panicked, a crash kernel handles it", bit 2 "shut down"); a write
/// reports one, the lowest set bit of those winning, as QEMU's. A panic ends the run with
/// status 26 (`StopReason.guestPanic`: QEMU's default `-action panic=shutdown` exits too,
/// but a test harness wants to tell a panic from a clean end); a crash kernel is a line
/// on stderr and the guest goes on; a shutdown is a power-off (status 0). Other bits are
/// ignored. One byte wide: of a wider access only the byte at 0x505 is the device's (a
/// wider read gives all-ones above it). No state: a snapshot keeps only that the
/// machine has it (`pvpanic yes`). As QEMU's `pvpanic_isa_realizefn`, it names its port
/// in fw_cfg's directory (`fwCfgFile`), which firmware and kernels look up by name.
enum PVPanic {
    static let port: UInt16 = 0x505
    /// `etc/pvpanic-port`: the port, 2 bytes little-endian. The machine adds it to the
    /// user's `--fw-cfg` files, so a snapshot's `fw-cfg-files` blob keeps it and a restore
    /// shows the guest the directory it had (one taken before the file existed, without it).
    static let fwCfgFile = FwCfgFile(name: "etc/pvpanic-port", bytes: [UInt8(truncatingIfNeeded: port), UInt8(truncatingIfNeeded: port >> 8)])
    static let panicked: UInt8 = 0x01
    static let crashLoaded: UInt8 = 0x02
    static let shutdown: UInt8 = 0x04
    static let events = panicked | crashLoaded | shutdown

    /// What a write of `value` by `vcpu` asks for: a stop, or nil (the guest goes on).
    static func event(_ value: UInt8, vcpu: UInt32) -> StopReason? {
        let how = "vCPU \(vcpu) wrote \(hex(value)) to the pvpanic port \(hex(port))"
        if value & panicked != 0 { return .guestPanic(how) }
        if value & crashLoaded != 0 {
            ExitStats.err("vmm: the guest panicked and a crash kernel of its own handles it (\(how)); the run goes on\n")
            return nil
        }
        if value & shutdown != 0 { return .powerOff(how) }
        return nil
    }

    static func register(on dispatcher: ExitDispatcher) throws(VMMError) {
        try dispatcher.registerPIO(port: port, owner: "pvpanic (built-in)") { io, vcpu in
            for i in 0..<io.count {
                if !io.isWrite {
                    io.setElement(i, ~0 << 8 | UInt32(events))
                } else if let stop = event(UInt8(truncatingIfNeeded: io.element(i)), vcpu: vcpu.id) {
                    return vcpu.stopMachine(stop)
                }
            }
            return .handled
        }
    }
}
