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

/// Little-endian bytes of an integer, for the boot information structures.
func le<T: FixedWidthInteger>(_ value: T) -> [UInt8] { withUnsafeBytes(of: value.littleEndian) { Array($0) } }
