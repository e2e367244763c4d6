import VMMKit

/// Boots a Linux bzImage through the 64-bit boot protocol (Documentation/arch/x86/
/// boot.rst), as rust-vmm's linux-loader, Firecracker and Cloud Hypervisor do: there is
/// no BIOS for the real-mode setup code QEMU runs, so the loader fills the zero page
/// (`boot_params`) itself and enters the protected-mode kernel at +0x200 in long mode,
/// RSI = the zero page. Needs boot protocol 2.12 or later with XLF_KERNEL_64 (Linux 3.8).
struct LinuxBoot {
    static let headerMagic: UInt32 = 0x5372_6448 // "HdrS" at 0x202
    static let bootFlag: UInt16 = 0xaa55         // at 0x1fe
    static let loadAddress: UInt64 = 0x10_0000   // the protected-mode kernel, as QEMU and linux-loader place it
    // Offsets in the loader's table window: past the TSS (to 0xa068) and the IDT slot.
    static let zeroPage: UInt64 = 0xc000
    static let cmdline: UInt64 = 0xd000
    static let maxCommandLine = 4095
    /// What QEMU's `pc` leaves the BIOS at the top of RAM below the hole, above an initrd
    /// (pcmc->acpi_data_size: 128 KiB of ACPI tables, 32 KiB of others); SeaBIOS reserves
    /// the top `ImageLoader.highTableZone` of it.
    static let acpiDataSize: UInt64 = 0x2_8000
    let loader: ImageLoader
    let request: ImageRequest

    /// Whether `bytes` has the setup header's boot flag and magic (QEMU checks the magic
    /// before anything else).
    static func isBzImage(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 0x206 && ByteReader(bytes).u16(0x1fe) == bootFlag && ByteReader(bytes).u32(0x202) == headerMagic
    }

    func boot(_ bytes: [UInt8]) throws(LoaderError) -> BootEntry {
        let path = request.path
        func bad(_ why: String) -> LoaderError { LoaderError(.image, "\(path): \(why)") }
        let r = ByteReader(bytes)
        // The header runs to 0x202 + the byte at 0x201 (the setup code's jump).
        let headerEnd = 0x202 + Int(bytes[0x201])
        guard headerEnd <= bytes.count else {
            throw bad("truncated: the setup header ends at \(hex(headerEnd)) but the file has \(hex(bytes.count)) bytes")
        }
        guard headerEnd >= 0x208 else { throw bad("the setup header ends at \(hex(headerEnd)), before its version") }
        // The version first, so an old kernel is told so, not that its header is short.
        let version = r.u16(0x206)
        guard version < 0x020c || headerEnd >= 0x26c else {
            throw bad("the setup header ends at \(hex(headerEnd)); boot protocol 2.12 needs it to 0x26c")
        }
        guard version >= 0x020c, r.u16(0x236) & 1 != 0 else {
            throw bad("boot protocol \(version >> 8).\(String(version & 0xff).leftPadded(2)) without a 64-bit entry (XLF_KERNEL_64, protocol 2.12 and later) cannot be booted: there is no BIOS for its real-mode setup")
        }
        let setupSectors = bytes[0x1f1] == 0 ? 4 : Int(bytes[0x1f1])
        let kernelOffset = (setupSectors + 1) * 512
        guard kernelOffset < bytes.count else {
            throw bad("truncated: \(setupSectors) setup sectors put the kernel at file offset \(hex(kernelOffset)), past the file's \(hex(bytes.count)) bytes")
        }
        let kernel = Array(bytes[kernelOffset...])
        // The kernel decompresses to where it runs, its preferred address when that lies
        // higher (a relocatable x86-64 kernel loaded at 1 MiB moves to 16 MiB), and needs
        // init_size bytes from there: all of it must be RAM, and nothing else may go there.
        let initSize = UInt64(r.u32(0x260))
        let runsAt = max(Self.loadAddress, min(r.u64(0x258), 1 << 40)) // pref_address, bounded
        let needs = max(UInt64(kernel.count), runsAt - Self.loadAddress + initSize)
        try loader.checkPlacement(Self.loadAddress, needs, what: "\(path): kernel (run at \(hex(runsAt)), init_size \(hex(initSize)))")
        try loader.write(kernel, at: Self.loadAddress)
        let kernelRange = Self.loadAddress..<Self.loadAddress + needs

        var initrd: (start: UInt64, size: UInt64)?
        if let file = request.initrd {
            let data = try readFile(file, what: "initrd", limit: loader.ramSize)
            // As QEMU's x86_load_linux: as high as initrd_addr_max (any 32-bit address with
            // XLF_CAN_BE_LOADED_ABOVE_4G) and RAM allow, below the high table zone the
            // BIOS reserves (`acpiDataSize`), on a page boundary.
            let headerMax = r.u16(0x236) & 2 != 0 ? UInt64(UInt32.max) : UInt64(r.u32(0x22c))
            let initrdMax = min(headerMax, loader.initrdMax)
            let size = UInt64(data.count)
            guard size < initrdMax, (initrdMax - size) & ~0xfff >= kernelRange.upperBound else {
                throw LoaderError(.image, "\(file): initrd of \(size) bytes does not fit between the kernel's end \(hex(kernelRange.upperBound)) and \(hex(initrdMax)) (initrd_addr_max, or RAM below the BIOS's \(Self.acpiDataSize >> 10) KiB of tables)")
            }
            let start = (initrdMax - size) & ~0xfff
            try loader.write(data, at: start)
            initrd = (start, size)
        }
        let (window, rsdp) = try loader.placeTables(avoiding: [kernelRange] + (initrd.map { [$0.start..<$0.start + $0.size] } ?? []), path: path)

        let cmdlineLimit = min(Self.maxCommandLine, Int(r.u32(0x238)))
        let cmdline = Array((request.append ?? "").utf8)
        guard cmdline.count <= cmdlineLimit else {
            throw LoaderError(.request, "the command line (append) is \(cmdline.count) bytes; this kernel takes at most \(cmdlineLimit) (cmdline_size)", fields: [.append])
        }
        try loader.write(cmdline + [0], at: window + Self.cmdline)

        var page = [UInt8](repeating: 0, count: 4096)
        page.replaceSubrange(0x1f1..<headerEnd, with: bytes[0x1f1..<headerEnd])
        func put<T: FixedWidthInteger>(_ value: T, _ at: Int) { page.replaceSubrange(at..<at + MemoryLayout<T>.size, with: le(value)) }
        put(UInt8(0xb0), 0x210)                      // type_of_loader: QEMU's (0xB, revision 0)
        put(page[0x211] | 0x80, 0x211)               // loadflags: CAN_USE_HEAP
        put(UInt32(Self.loadAddress), 0x214)         // code32_start
        put(UInt16(0xfe00), 0x224)                   // heap_end_ptr
        put(UInt32(window + Self.cmdline), 0x228)    // cmd_line_ptr
        put(UInt32(initrd?.start ?? 0), 0x218)       // ramdisk_image
        put(UInt32(initrd?.size ?? 0), 0x21c)        // ramdisk_size
        put(rsdp ?? 0, 0x070)                        // acpi_rsdp_addr (2.14+; older kernels search)
        // The BIOS's map, as the real-mode setup reads it through INT 15h E820 under QEMU.
        let map = loader.memoryMap
        put(UInt8(map.count), 0x1e8)                 // e820_entries
        for (i, e) in map.enumerated() {
            page.replaceSubrange(0x2d0 + i * 20..<0x2d0 + i * 20 + 20, with: le(e.base) + le(e.length) + le(e.type))
        }
        try loader.write(page, at: window + Self.zeroPage)
        return .linux64(entry: Self.loadAddress + 0x200, bootParams: window + Self.zeroPage, tables: window)
    }
}

private extension String {
    func leftPadded(_ width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
