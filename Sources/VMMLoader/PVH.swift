import VMMKit

/// Boots an ELF (32- or 64-bit) that carries a PVH entry note, as QEMU's `-kernel` does
/// through its pvh.bin option ROM: 32-bit protected mode, paging off, interrupts off,
/// EBX = the guest-physical address of an `hvm_start_info` (version 1, Xen's
/// `arch-x86/hvm/start_info.h`) that gives the command line (`-append` alone), the
/// module (`-initrd`) and the memory map. Linux (CONFIG_PVH) and unikernels boot so.
struct PVH {
    static let magic: UInt32 = 0x336e_c578
    // Offsets in the loader's table window, shared with Multiboot.
    static let startInfo = BootInfoLayout.info
    static let cmdline = BootInfoLayout.cmdline
    static let moduleList = BootInfoLayout.moduleList
    static let memoryMap = BootInfoLayout.memoryMap
    static let maxCommandLine = BootInfoLayout.maxCommandLine
    let loader: ImageLoader
    let request: ImageRequest

    func boot(_ elf: ELFImage, _ bytes: [UInt8], entry: UInt32) throws(LoaderError) -> BootEntry {
        var used = try loader.loadSegments(elf, bytes, path: request.path)
        // The note's entry is physical already (Xen's PHYS32_ENTRY).
        try ELFImage.checkEntry(UInt64(entry), in: used, path: request.path)
        var module: ImageLoader.Module?
        if let initrd = request.initrd {
            // High in RAM below the BIOS's tables, as QEMU's (not after the kernel, as
            // Multiboot's modules); below the hole, so within hvm_modlist_entry's reach.
            module = try loader.loadModuleBelowTables(initrd, avoiding: used)
            used.append(module!.range)
        }
        let (window, rsdp) = try loader.placeTables(avoiding: used, path: request.path)
        let cmdline = Array((request.append ?? "").utf8)
        guard cmdline.count <= Self.maxCommandLine else {
            throw LoaderError(.request, "the command line (append) is longer than \(Self.maxCommandLine) bytes", fields: [.append])
        }
        try loader.write(cmdline + [0], at: window + Self.cmdline)
        if let module { // paddr, size, cmdline_paddr (none), reserved
            try loader.write(le(module.start) + le(module.size) + le(UInt64(0)) + le(UInt64(0)), at: window + Self.moduleList)
        }
        // The BIOS's memory map, as QEMU's pvh.bin copies it (XEN_HVM_MEMMAP_TYPE_* are E820's).
        let ram = loader.memoryMap
        var map: [UInt8] = []
        for e in ram { map += le(e.base) + le(e.length) + le(e.type) + le(UInt32(0)) }
        try loader.write(map, at: window + Self.memoryMap)
        // magic, version, flags, nr_modules, modlist_paddr, cmdline_paddr, rsdp_paddr (0
        // without ACPI tables), memmap_paddr, memmap_entries, reserved: 56 bytes.
        let info = le(Self.magic) + le(UInt32(1)) + le(UInt32(0)) + le(UInt32(module == nil ? 0 : 1))
            + le(module == nil ? 0 : window + Self.moduleList) + le(window + Self.cmdline) + le(rsdp ?? 0)
            + le(window + Self.memoryMap) + le(UInt32(ram.count)) + le(UInt32(0))
        try loader.write(info, at: window + Self.startInfo)
        // The window lies below the MMIO hole (`tableWindow`): a 32-bit address.
        return .protected32(entry: entry, eax: 0, ebx: UInt32(window + Self.startInfo), gdt: window + GuestLayout.gdt)
    }
}
