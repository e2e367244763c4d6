/// Port 0xcf9 of QEMU's `pc` machine: PIIX3's reset control register, one byte. A write
/// with bit 2 (reset CPU) set asks for a reset; any other write keeps bit 1 (system
/// reset: hard or soft) and reads return it. Linux's `reboot=pci` and the reset register
/// QEMU's ACPI tables name (0xcf9, value 6) both land here. Without it the write was
/// dropped and the guest, waiting to be reset, ran on until `--max-seconds`, or forever.
///
/// Part of the machine, as fw_cfg is (registered after the plugins, where none claims
/// the port; `SystemControlPortA` and `I8042` are the other reset paths).
final class ResetControl: ResetRegister, @unchecked Sendable {
    static let port: UInt16 = 0xcf9

    init() { super.init(port: Self.port, owner: "reset control (built-in)", resetBits: 0x04, keptBits: 0x02) }
}
