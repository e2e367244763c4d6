/// What the 32-bit boot protocols (Multiboot, PVH) hand the guest alike: the module
/// (QEMU's `-initrd`) and RAM as QEMU's e820 table describes it.
extension ImageLoader {
    /// A module loaded into guest RAM: where, how long, and the file it came from.
    struct Module {
        let start: UInt64
        let size: UInt64
        let path: String
        var range: Range<UInt64> { start..<start + size }
    }

    /// Loads `path` on the first page boundary after `kernelEnd`, as QEMU places it.
    /// `thirtyTwoBit`: the name of a protocol whose address fields are 32-bit
    /// (Multiboot's), so the module must end at or below 4 GiB.
    func loadModule(_ path: String, after kernelEnd: UInt64, thirtyTwoBit: String? = nil) throws(LoaderError) -> Module {
        let bytes = try readFile(path, what: "module (initrd)", limit: ramSize)
        let (start, overflow) = kernelEnd.addingReportingOverflow(0xfff)
        guard !overflow else { throw LoaderError(.image, "\(path): module (initrd): the kernel ends at \(hex(kernelEnd)), no room after it") }
        let module = Module(start: start & ~0xfff, size: UInt64(bytes.count), path: path)
        try checkPlacement(module.start, module.size, what: "\(path): module (initrd)")
        // mod_end is the end itself: 2^32 does not fit in it either.
        if let thirtyTwoBit, module.range.upperBound >= 1 << 32 {
            throw LoaderError(.image, "\(path): module (initrd) [\(hex(module.start))..<\(hex(module.range.upperBound))] ends at or above 4 GiB, out of \(thirtyTwoBit)'s reach")
        }
        try write(bytes, at: module.start)
        return module
    }
}

extension ImageLoader {
    /// QEMU's `initrd_max` before a Linux header's own limit: the last byte of RAM below
    /// the hole and below the BIOS's 160 KiB of tables (`LinuxBoot.acpiDataSize`); 0 when
    /// RAM is no larger than those tables.
    var initrdMax: UInt64 { ramSize > LinuxBoot.acpiDataSize ? ramSize - LinuxBoot.acpiDataSize - 1 : 0 }

    /// Loads `path` where QEMU's `x86_load_linux` (hw/i386/x86-common.c) puts a PVH
    /// kernel's initrd: `initrd_max` = RAM below the hole - the BIOS's 160 KiB of tables
    /// (`LinuxBoot.acpiDataSize`) - 1, the module at (`initrd_max` - size) rounded down to
    /// a page. Refused, as QEMU refuses it, when size >= `initrd_max`; refused too where
    /// it would overlap what the kernel loaded (`used`), which QEMU does not check.
    func loadModuleBelowTables(_ path: String, avoiding used: [Range<UInt64>]) throws(LoaderError) -> Module {
        let bytes = try readFile(path, what: "module (initrd)", limit: ramSize)
        let size = UInt64(bytes.count)
        guard size < initrdMax else {
            throw LoaderError(.image, "\(path): module (initrd) of \(size) bytes does not fit below \(hex(initrdMax)) (RAM below the BIOS's \(LinuxBoot.acpiDataSize >> 10) KiB of tables)")
        }
        let module = Module(start: (initrdMax - size) & ~0xfff, size: size, path: path)
        try checkPlacement(module.start, module.size, what: "\(path): module (initrd)")
        if let clash = used.first(where: { $0.overlaps(module.range) }) {
            throw LoaderError(.image, "\(path): module (initrd) [\(hex(module.start))..<\(hex(module.range.upperBound))] overlaps the kernel's [\(hex(clash.lowerBound))..<\(hex(clash.upperBound))]")
        }
        try write(bytes, at: module.start)
        return module
    }
}

/// Little-endian bytes of an integer, for the boot information structures.
func le<T: FixedWidthInteger>(_ value: T) -> [UInt8] { withUnsafeBytes(of: value.littleEndian) { Array($0) } }
