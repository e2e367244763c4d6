import Synchronization
import VMMKit

/// Port 0xcf9 of QEMU's `pc` machine: PIIX3's reset control register, one byte. A write
/// with bit 2 (reset CPU) set asks for a reset; any other write keeps bit 1 (system
/// reset: hard or soft) and reads return it. Linux's `reboot=pci` and the reset register
/// QEMU's ACPI tables name (0xcf9, value 6) both land here. The launcher does not
/// reboot: a reset stops the machine (`StopReason.reset`) and the run ends with status 0,
/// as QEMU's does with `-no-reboot`. Without it the write was dropped and the guest,
/// waiting to be reset, ran on until `--max-seconds`, or forever.
///
/// Part of the machine, as fw_cfg is (registered after the plugins, where none claims
/// the port; `I8042` is the other reset path); bit 1 is saved in snapshots
/// (`BuiltInDeviceState`).
final class ResetControl: Sendable {
    static let port: UInt16 = 0xcf9
    private let register = Atomic<UInt8>(0)

    /// Bit 1, for a snapshot; a restore puts back what `BuiltInDeviceState.decode` checked.
    var state: UInt8 { register.load(ordering: .relaxed) }
    func restore(_ value: UInt8) { register.store(value & 0x02, ordering: .relaxed) }

    func register(on dispatcher: ExitDispatcher) throws(VMMError) {
        try dispatcher.registerPIO(port: Self.port, owner: "reset control (built-in)") { [self] io, vcpu in
            for i in 0..<io.count {
                guard io.isWrite else {
                    // The bytes above the register (a wider access) are unassigned: all-ones.
                    io.setElement(i, 0xffff_ff00 | UInt32(register.load(ordering: .relaxed)))
                    continue
                }
                let byte = UInt8(truncatingIfNeeded: io.element(i))
                if byte & 0x04 != 0 {
                    return vcpu.stopMachine(.reset("vCPU \(vcpu.id) wrote \(hex(byte)) to port \(hex(Self.port))"))
                }
                register.store(byte & 0x02, ordering: .relaxed)
            }
            return .handled
        }
    }
}
