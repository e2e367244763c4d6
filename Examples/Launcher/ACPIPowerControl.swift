import Synchronization
import VMMKit

/// PM1a_CNT, the ACPI power-management control register QEMU's `pc` and `q35` machines
/// put at port 0x604 (16 bits; the PM block at 0x600 that their firmware sets up): SLP_EN
/// (bit 13) with sleep type 0 (bits 10-12, the S5 their DSDT names) switches the machine
/// off: it stops (`StopReason.powerOff`) and the run ends with status 0, quietly, as QEMU
/// exits. `outw(0x604, 0x2000)` is how countless guests and test harnesses written for
/// QEMU end; without it the write was dropped and they ran on. Other sleep types (S3,
/// S4) are not modelled: the bits are kept and the guest goes on, as if woken at once.
/// Reads return what was written, without SLP_EN; byte accesses reach either half, as
/// QEMU's do. The FADT the loader writes names this port (`PCFirmware`), so guests
/// that read ACPI find it; as that FADT has no SMI command port (the machine is in ACPI
/// mode from the start), SCI_EN (bit 0) then reads 1 from reset, where QEMU's firmware
/// sets it when the guest asks through port 0xb2. Registered where no plugin claims the port; in snapshots
/// (`BuiltInDeviceState`).
final class ACPIPowerControl: Sendable {
    static let port: UInt16 = 0x604
    static let sleepEnable: UInt16 = 1 << 13
    static let sciEnable: UInt16 = 1
    private let register: Atomic<UInt16>

    /// `acpiMode`: the guest has ACPI tables that name no SMI command port.
    init(acpiMode: Bool) { register = Atomic(acpiMode ? Self.sciEnable : 0) }

    var state: UInt16 { register.load(ordering: .relaxed) }
    func restore(_ value: UInt16) { register.store(value & ~Self.sleepEnable, ordering: .relaxed) }

    func register(on dispatcher: ExitDispatcher) throws(VMMError) {
        try dispatcher.registerPIO(port: Self.port, count: 2, owner: "ACPI PM1a control (built-in)") { [self] io, vcpu in
            // Byte lane of the access's first byte: 0 (0x604) or 1 (0x605).
            let lane = Int(io.port &- Self.port)
            for i in 0..<io.count {
                let old = register.load(ordering: .relaxed)
                guard io.isWrite else {
                    // Bytes past the register's two read all-ones.
                    let bytes = UInt32(old >> UInt16(lane * 8)) | ~UInt32(0) << ((2 - lane) * 8)
                    io.setElement(i, bytes)
                    continue
                }
                let element = io.element(i)
                var value = UInt16(truncatingIfNeeded: element << UInt32(lane * 8))
                // A write narrower than the register keeps the other half.
                let written: UInt16 = io.size + lane >= 2 ? ~0 << UInt16(lane * 8) : 0x00ff
                value = (value & written) | (old & ~written)
                register.store(value & ~Self.sleepEnable, ordering: .relaxed)
                if value & Self.sleepEnable != 0, (value >> 10) & 7 == 0 {
                    return vcpu.stopMachine(.powerOff("vCPU \(vcpu.id) wrote \(hex(value)) to port \(hex(Self.port))"))
                }
            }
            return .handled
        }
    }
}
