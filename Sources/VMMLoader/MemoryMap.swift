import VMMKit

/// The memory map a kernel QEMU's `pc` machine boots with `-kernel` reads from the BIOS
/// (INT 15h E820: Multiboot's option ROM copies it into the mmap, PVH's into the memmap,
/// Linux's real-mode setup into boot_params), as SeaBIOS builds it (src/post.c,
/// src/malloc.c, src/fw/paravirt.c): the EBDA's KiB below 640 KiB, the BIOS's 64 KiB at
/// 0xf0000, the high table zone at the top of RAM below the hole, the KVM identity map
/// and TSS QEMU reserves in its `etc/e820`, and SeaBIOS's 256 KiB below 4 GiB.
public struct MemoryMapEntry: Equatable, Sendable {
    public var base: UInt64
    public var length: UInt64
    public var type: UInt32
    /// E820's types, as Multiboot's mmap and PVH's memmap number them too.
    public static let ram: UInt32 = 1, reserved: UInt32 = 2

    public init(base: UInt64, length: UInt64, type: UInt32) {
        self.base = base
        self.length = length
        self.type = type
    }
}

extension ImageLoader {
    /// Where conventional memory ends: the last KiB below 640 KiB is the EBDA's.
    static let conventionalMemoryEnd: UInt64 = 0x9_fc00
    /// The BIOS area SeaBIOS reserves (BUILD_BIOS_ADDR, BUILD_BIOS_SIZE); `PCFirmware`'s
    /// MP, ACPI and SMBIOS tables lie in it.
    static let biosArea: Range<UInt64> = 0xf_0000..<0x10_0000
    /// What SeaBIOS keeps of its high table zone at the top of RAM below the hole (QEMU's
    /// ACPI tables, padded to 128 KiB, and its own tables there): reserved, as a Linux
    /// booted by QEMU's `pc` reports it ("[mem 0x7fe0000-0x7ffffff] reserved" with 128 MiB).
    /// Nothing of this machine's lies there; it is reserved so that guests find the RAM QEMU's do.
    public static let highTableZone: UInt64 = 0x2_0000
    /// SeaBIOS's reservation of the BIOS image's mapping below 4 GiB (qemu_preinit).
    static let biosROM: (base: UInt64, length: UInt64) = (0xfffc_0000, 0x4_0000)

    /// The BIOS's E820 map for this RAM, sorted by address: RAM below the EBDA, the
    /// EBDA, the BIOS area, RAM from 1 MiB to the high table zone, that zone, KVM's
    /// identity map and TSS (`VirtualMachine.identityMapAddress`), the BIOS ROM, RAM above 4 GiB.
    public var memoryMap: [MemoryMapEntry] {
        let ram = MemoryMapEntry.ram, reserved = MemoryMapEntry.reserved
        var map = [MemoryMapEntry(base: 0, length: min(ramSize, Self.conventionalMemoryEnd), type: ram)]
        if ramSize > Self.conventionalMemoryEnd {
            map.append(MemoryMapEntry(base: Self.conventionalMemoryEnd, length: 0xa_0000 - Self.conventionalMemoryEnd, type: reserved))
        }
        map.append(MemoryMapEntry(base: Self.biosArea.lowerBound, length: UInt64(Self.biosArea.count), type: reserved))
        let above1M = Self.biosArea.upperBound
        if ramSize > above1M {
            // The zone only where RAM above 1 MiB keeps at least as much again (SeaBIOS
            // falls back to smaller zones on smaller machines than the launcher makes).
            let zone = ramSize - above1M >= 2 * Self.highTableZone ? Self.highTableZone : 0
            map.append(MemoryMapEntry(base: above1M, length: ramSize - above1M - zone, type: ram))
            if zone > 0 { map.append(MemoryMapEntry(base: ramSize - zone, length: zone, type: reserved)) }
        }
        map.append(MemoryMapEntry(base: VirtualMachine.identityMapAddress, length: VirtualMachine.identityMapSize, type: reserved))
        map.append(MemoryMapEntry(base: Self.biosROM.base, length: Self.biosROM.length, type: reserved))
        if highRAMSize > 0 { map.append(MemoryMapEntry(base: 1 << 32, length: highRAMSize, type: ram)) }
        return map
    }

    /// Multiboot's mem_upper in KiB, as QEMU's option ROM computes it from the map: the
    /// RAM contiguous from 1 MiB (none when RAM ends below it).
    var upperMemoryKiB: UInt64 {
        memoryMap.first { $0.type == MemoryMapEntry.ram && $0.base == Self.biosArea.upperBound }.map { $0.length >> 10 } ?? 0
    }
}
