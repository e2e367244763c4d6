extension ImageLoader {
    /// Places the loader's tables once the image and its modules (`used`) are in RAM:
    /// returns the window's base (`tableWindow`) and writes the firmware's tables
    /// (`writeFirmwareTables`) where neither the image nor the window is, with the
    /// ACPI RSDP's address when they were written.
    func placeTables(avoiding used: [Range<UInt64>], path: String) throws(LoaderError) -> (window: UInt64, rsdp: UInt64?) {
        let window = try tableWindow(avoiding: used, path: path)
        let written = try writeFirmwareTables(avoiding: used + [window..<window + Self.tableWindowSize])
        return (window, written ? PCFirmware.acpiAddress : nil)
    }

    /// The base of the 64 KiB window for the loader's own structures: 0 (its usual place,
    /// where guests written for this loader expect the IDT slot at 0xb000) when the image
    /// leaves [0x1000, 0x10000) free, else the lowest 64 KiB-aligned window of RAM below
    /// the stack page and the MMIO hole (at most `maxLowRAM`) that no range in `used` touches.
    /// The first page of the window at 0 is never used, so an image may sit there.
    func tableWindow(avoiding used: [Range<UInt64>], path: String) throws(LoaderError) -> UInt64 {
        let size = Self.tableWindowSize
        // The long-mode stack's top page belongs to the guest too (RAM below a page has none).
        let top = min(ramSize, Self.maxLowRAM)
        let limit = top >= 0x1000 ? (top - 0x10) & ~0xfff : 0
        var base: UInt64 = 0
        while base + size <= limit {
            let footprint = (base == 0 ? Self.firstPageEnd : base)..<base + size
            if let clash = used.first(where: { $0.overlaps(footprint) && !$0.isEmpty }) {
                // Jump past the range in the way, to the next window boundary.
                let next = (clash.upperBound + size - 1) & ~(size - 1)
                base = max(base + size, next)
                continue
            }
            return base
        }
        throw LoaderError(.image, "\(path): no free 64 KiB of RAM below \(hex(limit)) for the loader's tables (the image and modules fill it)")
    }
}

/// Where the 32-bit boot protocols put what they hand the guest, as offsets in the
/// loader's table window (the GDT at `GuestLayout.gdt` in the same window): the same
/// places for Multiboot and PVH, one protocol an image.
enum BootInfoLayout {
    /// Multiboot's info structure or PVH's `hvm_start_info`.
    static let info: UInt64 = 0x9000
    /// Multiboot's boot loader name, in the info structure's page.
    static let loaderName: UInt64 = 0x9100
    /// The command line: 4 KiB (QEMU's PVH ROM takes 4096 bytes; its Multiboot loader has
    /// no bound), in the page Linux's zero page has when Linux boots, 8 KiB below the
    /// stack top the 32-bit entry gets.
    static let cmdline: UInt64 = 0xc000
    static let maxCommandLine = 4095
    static let moduleList: UInt64 = 0x9800
    static let memoryMap: UInt64 = 0x9a00
    /// Multiboot's module strings, up to the IDT slot at 0xb000.
    static let moduleStrings: UInt64 = 0x9b00
}
