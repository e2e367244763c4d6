import Synchronization
import VMMKit

/// Port 0x92 of QEMU's `pc` machine: System Control Port A, one byte. Bit 1 is the fast
/// A20 gate; bit 0 set by a write resets the machine (QEMU resets on a 0-to-1 change of
/// bit 0, and bit 0 is never kept here: a write that sets it ends the run). Firmware and
/// boot loaders written for QEMU set bit 1 here to open A20, and some kernels reset
/// through it (`in al,0x92; or al,1; out 0x92,al`). The other bits read back as written,
/// as QEMU's do; reads start at 0. A20 itself is not modelled: under KVM the gate is
/// always open, as in QEMU with KVM. Without it the port was unassigned: reads all-ones
/// (so the guest saw A20 "open" and a reset "pending") and writes dropped, a reset never
/// happening.
///
/// Part of the machine, as `ResetControl` is (registered where no plugin claims the
/// port); the byte is saved in snapshots (`BuiltInDeviceState`).
final class SystemControlPortA: Sendable {
    static let port: UInt16 = 0x92
    private let register = Atomic<UInt8>(0)

    /// The byte, for a snapshot; bit 0 is always clear.
    var state: UInt8 { register.load(ordering: .relaxed) }
    /// Puts back what `BuiltInDeviceState.decode` checked (bit 0 clear).
    func restore(_ value: UInt8) { register.store(value & ~0x01, ordering: .relaxed) }

    func register(on dispatcher: ExitDispatcher) throws(VMMError) {
        try dispatcher.registerPIO(port: Self.port, owner: "system control port A (built-in)") { [self] io, vcpu in
            for i in 0..<io.count {
                guard io.isWrite else {
                    // The bytes above the register (a wider access) are unassigned: all-ones.
                    io.setElement(i, 0xffff_ff00 | UInt32(register.load(ordering: .relaxed)))
                    continue
                }
                let byte = UInt8(truncatingIfNeeded: io.element(i))
                if byte & 0x01 != 0 {
                    return vcpu.stopMachine(.reset("vCPU \(vcpu.id) wrote \(hex(byte)) to port \(hex(Self.port))"))
                }
                register.store(byte, ordering: .relaxed)
            }
            return .handled
        }
    }
}
