/// The Intel MultiProcessor Specification 1.4 tables a PC's BIOS leaves in memory, as
/// SeaBIOS does under QEMU and as kvmtool and Firecracker write them: how a guest that
/// does not read ACPI (xv6, Linux with `acpi=off`, many teaching kernels) finds its
/// processors' local APIC IDs, the I/O APIC and how the ISA interrupts reach it.
///
/// It describes the machine KVM's in-kernel irqchip makes: local APIC ID = vCPU index
/// (version 0x14) at 0xfee00000; one I/O APIC (ID 0, version 0x11, as KVM resets it) at
/// 0xfec00000 with ISA IRQ 0 (the PIT) on its pin 2 and ISA IRQ n on pin n otherwise, no
/// entry for IRQ 2 (the cascade), as SeaBIOS writes it when QEMU's fw_cfg says
/// `irq0-override` (src/fw/mptable.c) and as `VirtualMachine.pcGSIRouting` routes them;
/// ExtINT on every local APIC's LINT0 and NMI on LINT1.
enum MPTable {
    static let localAPIC: UInt32 = 0xfee0_0000
    static let ioAPIC: UInt32 = 0xfec0_0000
    static let ioAPICID: UInt8 = 0
    static let isaIRQs: UInt8 = 16
    static let headerSize = 44

    /// The floating pointer (16 bytes) and the configuration table after it, both
    /// checksummed, for `processors` vCPUs (the first the bootstrap processor) at
    /// guest-physical `base` (below 4 GiB).
    static func bytes(processors: Int, at base: UInt32) -> [UInt8] {
        var entries: [UInt8] = []
        for id in 0..<processors { // type 0: ID, version, enabled (+ bootstrap), signature, features
            entries += [0, UInt8(id), 0x14, id == 0 ? 0x3 : 0x1] + le(UInt32(0x600)) + le(UInt32(0x201)) + [UInt8](repeating: 0, count: 8)
        }
        entries += [1, 0] + Array("ISA   ".utf8) // type 1: bus 0
        entries += [2, ioAPICID, 0x11, 0x1] + le(ioAPIC) // type 2: enabled
        for irq in 0..<isaIRQs where irq != 2 { // type 3: INT, flags 0 (as the bus: edge, active high)
            entries += [3, 0, 0, 0, 0, irq, ioAPICID, irq == 0 ? 2 : irq]
        }
        entries += [4, 3, 0, 0, 0, 0, 0xff, 0] // type 4: ExtINT to every LINT0
        entries += [4, 1, 0, 0, 0, 0, 0xff, 1] // NMI to every LINT1
        let count = processors + 2 + Int(isaIRQs - 1) + 2

        var table = Array("PCMP".utf8) + le(UInt16(headerSize + entries.count)) + [4, 0]
        table += Array("VMMKIT  ".utf8) + Array("VMMKit      ".utf8)
        table += le(UInt32(0)) + le(UInt16(0)) + le(UInt16(count)) + le(localAPIC) + le(UInt16(0)) + [0, 0]
        table += entries
        table[7] = zeroSumByte(table)

        var pointer = Array("_MP_".utf8) + le(base + 16) + [1, 4, 0, 0, 0, 0, 0, 0]
        pointer[10] = zeroSumByte(pointer)
        return pointer + table
    }
}
