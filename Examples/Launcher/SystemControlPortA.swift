/// Port 0x92 of QEMU's `pc` machine: System Control Port A, one byte. Bit 1 is the fast
/// A20 gate; bit 0 set by a write resets the machine (QEMU resets on a 0-to-1 change of
/// bit 0; bit 0 is never kept here, so every write that sets it is one). Firmware and
/// boot loaders written for QEMU set bit 1 here to open A20, and some kernels reset
/// through it (`in al,0x92; or al,1; out 0x92,al`). The other bits read back as written,
/// as QEMU's do; reads start at 0, or at 0x02 (A20 on) for a kernel QEMU boots through
/// SeaBIOS (Multiboot, PVH, Linux: `seaBIOSValue`), which enables A20 here. A20 itself is not modelled: under KVM the gate is
/// always open, as in QEMU with KVM. Without it the port was unassigned: reads all-ones
/// and writes dropped, so a reset through it never happened.
///
/// Part of the machine, as `ResetControl` is (registered where no plugin claims the port).
final class SystemControlPortA: ResetRegister, @unchecked Sendable {
    static let port: UInt16 = 0x92
    /// What SeaBIOS leaves in the port (its `set_a20(1)` at POST): the fast A20 gate on.
    static let seaBIOSValue: UInt8 = 0x02

    init() { super.init(port: Self.port, owner: "system control port A (built-in)", resetBits: 0x01, keptBits: 0xfe) }
}
