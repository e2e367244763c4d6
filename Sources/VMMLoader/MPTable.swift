/// The Intel MultiProcessor Specification 1.4 tables a PC's BIOS leaves in memory, as
/// SeaBIOS does under QEMU and as kvmtool and Firecracker write them: how a guest that
/// does not read ACPI (xv6, Linux with `acpi=off`, many teaching kernels) finds its
/// processors' local APIC IDs, the I/O APIC and how the ISA interrupts reach it.
///
/// It describes the machine KVM's in-kernel irqchip makes: local APIC ID = vCPU index
/// (version 0x14) at 0xfee00000; one I/O APIC (ID 0, version 0x11, as KVM resets it) at
/// 0xfec00000 with ISA IRQ n on its pin n (KVM's default GSI routing, where the PIT
/// raises GSI 0); ExtINT on every local APIC's LINT0 and NMI on LINT1.
public struct MPTable: Sendable, Equatable {
    /// The floating pointer's place, in the BIOS area [0xf0000, 0x100000) a guest searches;
    /// the configuration table follows it.
    public static let address: UInt64 = 0xf_0000
    /// Local APIC IDs are one byte and 0xff is the broadcast ID.
    public static let maxProcessors = 255
    static let localAPIC: UInt32 = 0xfee0_0000
    static let ioAPIC: UInt32 = 0xfec0_0000
    static let ioAPICID: UInt8 = 0
    static let isaIRQs: UInt8 = 16
    static let headerSize = 44

    public let processors: Int

    /// `processors` vCPUs, the first the bootstrap processor.
    public init(processors: Int) throws(LoaderError) {
        guard (1...Self.maxProcessors).contains(processors) else {
            throw LoaderError(.request, "an MP table describes 1 to \(Self.maxProcessors) processors, not \(processors)")
        }
        self.processors = processors
    }

    /// The floating pointer (16 bytes) and the configuration table after it, both
    /// checksummed, for guest-physical address `at`.
    public func bytes(at base: UInt64 = MPTable.address) -> [UInt8] {
        var entries: [UInt8] = []
        for id in 0..<processors { // type 0: ID, version, enabled (+ bootstrap), signature, features
            entries += [0, UInt8(id), 0x14, id == 0 ? 0x3 : 0x1] + le(UInt32(0x600)) + le(UInt32(0x201)) + [UInt8](repeating: 0, count: 8)
        }
        entries += [1, 0] + Array("ISA   ".utf8) // type 1: bus 0
        entries += [2, Self.ioAPICID, 0x11, 0x1] + le(Self.ioAPIC) // type 2: enabled
        for irq in 0..<Self.isaIRQs { // type 3: INT, flags 0 (as the bus: edge, active high)
            entries += [3, 0, 0, 0, 0, irq, Self.ioAPICID, irq]
        }
        entries += [4, 3, 0, 0, 0, 0, 0xff, 0] // type 4: ExtINT to every LINT0
        entries += [4, 1, 0, 0, 0, 0, 0xff, 1] // NMI to every LINT1
        let count = processors + 2 + Int(Self.isaIRQs) + 2

        var table = Array("PCMP".utf8) + le(UInt16(Self.headerSize + entries.count)) + [4, 0]
        table += Array("VMMKIT  ".utf8) + Array("VMMKit      ".utf8)
        table += le(UInt32(0)) + le(UInt16(0)) + le(UInt16(count)) + le(Self.localAPIC) + le(UInt16(0)) + [0, 0]
        table += entries
        table[7] = checksum(table)

        // The table follows the pointer; `base` is below 1 MiB, so both fit 32 bits.
        var pointer = Array("_MP_".utf8) + le(UInt32(truncatingIfNeeded: base + 16)) + [1, 4, 0, 0, 0, 0, 0, 0]
        pointer[10] = checksum(pointer)
        return pointer + table
    }

    /// The byte that makes all of `bytes` sum to 0 (mod 256).
    private func checksum(_ bytes: [UInt8]) -> UInt8 {
        0 &- bytes.reduce(0, &+)
    }
}

extension ImageLoader {
    /// What a PC's BIOS leaves for a guest besides the tables above: the BIOS data area's
    /// extended BIOS data area segment (0x40e: 0x9fc0) and base memory size (0x413: 639
    /// KiB), which guests read to find where to search for the MP table, then the table
    /// itself. Written only where the image, its modules and the loader's window leave
    /// room (an image in the BIOS area gets no table, as it would have no BIOS).
    func writeFirmwareTables(avoiding used: [Range<UInt64>]) throws(LoaderError) {
        guard let table = mpTable else { return }
        let bytes = table.bytes()
        let range = MPTable.address..<MPTable.address + UInt64(bytes.count)
        guard range.upperBound <= ramSize, !used.contains(where: { $0.overlaps(range) }) else { return }
        try write(le(UInt16(0x9fc0)), at: 0x40e)
        try write(le(UInt16(639)), at: 0x413)
        try write(bytes, at: MPTable.address)
    }
}
