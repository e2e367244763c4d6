import VMMKit

/// A Multiboot v1 header found in the first 8 KiB of an image.
struct MultibootHeader {
    static let magic: UInt32 = 0x1BAD_B002
    static let bootloaderMagic: UInt32 = 0x2BAD_B002
    let offset: Int
    let flags: UInt32
    /// a.out kludge fields (flag 16): header_addr, load_addr, load_end_addr, bss_end_addr, entry_addr.
    let addresses: [UInt32]

    /// QEMU's search (`load_multiboot`): every 4-byte-aligned offset below 8192 - 48 (the
    /// header's longest form is 48 bytes); a magic whose checksum fails is a stray word,
    /// passed over, not an error. Every flag is accepted, as QEMU accepts them: bit 2 (a
    /// video mode) gets no mode and no framebuffer fields in the info (QEMU only warns).
    static func find(in bytes: [UInt8], path: String) throws(LoaderError) -> MultibootHeader? {
        let r = ByteReader(bytes)
        var at = 0
        while at < 8192 - 48, at + 12 <= bytes.count {
            defer { at += 4 }
            guard r.u32(at) == magic else { continue }
            let flags = r.u32(at + 4)
            guard magic &+ flags &+ r.u32(at + 8) == 0 else { continue }
            var addresses: [UInt32] = []
            if flags & (1 << 16) != 0 {
                guard at + 32 <= bytes.count else { throw LoaderError(.image, "\(path): truncated Multiboot header") }
                addresses = (0..<5).map { r.u32(at + 12 + $0 * 4) }
            }
            return MultibootHeader(offset: at, flags: flags, addresses: addresses)
        }
        return nil
    }
}

/// Loads a Multiboot kernel as QEMU's `-kernel` does and builds the info structure
/// (memory size, command line, modules) in the reserved low memory.
struct Multiboot {
    // Offsets in the loader's table window, shared with PVH.
    static let info = BootInfoLayout.info
    static let cmdline = BootInfoLayout.cmdline
    static let moduleList = BootInfoLayout.moduleList
    static let memoryMap = BootInfoLayout.memoryMap
    static let moduleStrings = BootInfoLayout.moduleStrings
    static let loaderName = BootInfoLayout.loaderName
    /// What `boot_loader_name` (flag 9) says: this loader, not QEMU's "qemu".
    public static let bootLoaderName = "VMMKit"
    /// BIOS drive 0x80 (the first hard disk), no partition: QEMU's `boot_device`.
    static let bootDevice: UInt32 = 0x8000_ffff
    /// Up to the memory map: 16 bytes an entry.
    static let maxModules = 32
    /// Up to the IDT slot at 0xb000, NULs included.
    static let maxModuleStringBytes = 0x1500
    let loader: ImageLoader
    let request: ImageRequest

    func boot(_ bytes: [UInt8], header: MultibootHeader) throws(LoaderError) -> BootEntry {
        let path = request.path
        var kernelEnd: UInt64
        let entry: UInt64
        var used: [Range<UInt64>] = []
        if header.addresses.isEmpty {
            guard ELFImage.isELF(bytes) else {
                throw LoaderError(.image, "\(path): Multiboot image is neither ELF nor has load addresses (flag 16)")
            }
            let elf = try ELFImage(bytes, path: path)
            guard !elf.is64 else { throw LoaderError(.image, "\(path): Multiboot kernels must be ELF32 (this one is ELF64)") }
            // QEMU's multiboot loader asks load_elf for EM_386 and gives up on another.
            guard elf.machine == 3 else { throw LoaderError(.image, "\(path): ELF machine \(elf.machine) is not i386") }
            used = try loader.loadSegments(elf, bytes, path: path)
            // Empty segments load nothing and end nothing (QEMU creates no ROM for them).
            kernelEnd = used.map(\.upperBound).max() ?? 0
            entry = elf.physicalEntry
        } else {
            let a = header.addresses.map(UInt64.init)
            let (headerAddr, loadAddr, loadEnd, bssEnd) = (a[0], a[1], a[2], a[3])
            guard headerAddr >= loadAddr, UInt64(header.offset) >= headerAddr - loadAddr else {
                throw LoaderError(.image, "\(path): Multiboot load addresses are inconsistent")
            }
            let fileStart = UInt64(header.offset) - (headerAddr - loadAddr)
            guard loadEnd == 0 || loadEnd >= loadAddr else {
                throw LoaderError(.image, "\(path): Multiboot load_end_addr \(hex(loadEnd)) is below load_addr \(hex(loadAddr))")
            }
            let size = loadEnd == 0 ? UInt64(bytes.count) - fileStart : loadEnd - loadAddr
            guard fileStart + size <= UInt64(bytes.count) else {
                throw LoaderError(.image, "\(path): truncated: Multiboot load_end_addr needs \(size) bytes from offset \(hex(fileStart))")
            }
            try loader.checkPlacement(loadAddr, max(size, bssEnd > loadAddr ? bssEnd - loadAddr : 0), what: "\(path): kernel")
            try loader.write(Array(bytes[Int(fileStart)..<Int(fileStart + size)]), at: loadAddr)
            kernelEnd = max(loadAddr + size, bssEnd)
            used = [loadAddr..<kernelEnd]
            entry = a[4]
        }
        guard entry < 1 << 32 else { throw LoaderError(.image, "\(path): entry \(hex(entry)) is above 4 GiB") }
        try ELFImage.checkEntry(entry, in: used, path: path)

        // Each module goes on the first page boundary after the kernel or the module
        // before it, then the info structures into a window none of them touches.
        let specs = try request.initrd.map(Self.modules) ?? []
        var modules: [(module: ImageLoader.Module, string: String)] = []
        var end = kernelEnd
        for spec in specs {
            let module = try loader.loadModule(spec.path, after: end, thirtyTwoBit: "Multiboot")
            used.append(module.range)
            modules.append((module, spec.string))
            end = module.range.upperBound
        }
        let window = try loader.placeTables(avoiding: used, path: path).window
        let info = window + Self.info

        // As QEMU's: memory sizes, boot device, command line, modules (the count may be 0),
        // memory map and boot loader name.
        var flags: UInt32 = 0x1 // mem_lower/mem_upper
        try put(Self.bootDevice, at: info + 12)
        flags |= 0x2
        // As QEMU's option ROM: mem_lower from INT 12h (below the EBDA), mem_upper the RAM
        // contiguous from 1 MiB in the memory map.
        try put(UInt32(min(loader.ramSize, ImageLoader.conventionalMemoryEnd) >> 10), at: info + 4)
        try put(UInt32(min(loader.upperMemoryKiB, UInt64(UInt32.max))), at: info + 8)
        let cmdline = [path, request.append].compactMap { $0 }.joined(separator: " ")
        // Multiboot's command line begins with the image's path, as QEMU's does: a long
        // path takes room from --append, and the message says which is long.
        guard cmdline.utf8.count <= BootInfoLayout.maxCommandLine else {
            throw LoaderError(.request, "\(path): the Multiboot command line, the image path (\(path.utf8.count) bytes) then --append (\(request.append?.utf8.count ?? 0) bytes), "
                + "is \(cmdline.utf8.count) bytes; at most \(BootInfoLayout.maxCommandLine) fit", fields: [.append])
        }
        try loader.write(Array(cmdline.utf8) + [0], at: window + Self.cmdline)
        try put(UInt32(window + Self.cmdline), at: info + 16)
        flags |= 0x4
        try put(UInt32(modules.count), at: info + 20)
        try put(UInt32(window + Self.moduleList), at: info + 24)
        flags |= 0x8
        if !modules.isEmpty {
            // mod_start, mod_end, string, reserved; each string is the module's whole
            // text, file name and arguments, as QEMU passes it.
            var list: [UInt8] = [], strings: [UInt8] = []
            for (module, string) in modules {
                list += le(UInt32(module.start)) + le(UInt32(module.range.upperBound))
                    + le(UInt32(window + Self.moduleStrings) + UInt32(strings.count)) + le(UInt32(0))
                strings += Array(string.utf8) + [0]
            }
            try loader.write(list, at: window + Self.moduleList)
            try loader.write(strings, at: window + Self.moduleStrings)
        }
        // The memory map (flag 6), the BIOS's (`memoryMap`). Entries: size (20), base, length, type.
        var entries: [UInt8] = []
        for e in loader.memoryMap { entries += le(UInt32(20)) + le(e.base) + le(e.length) + le(e.type) }
        try loader.write(entries, at: window + Self.memoryMap)
        try put(UInt32(entries.count), at: info + 44)
        try put(UInt32(window + Self.memoryMap), at: info + 48)
        flags |= 0x40
        try loader.write(Array(Self.bootLoaderName.utf8) + [0], at: window + Self.loaderName)
        try put(UInt32(window + Self.loaderName), at: info + 64)
        flags |= 0x200
        try put(flags, at: info)
        // VCPU.boot writes the flat GDT there.
        return .protected32(entry: UInt32(entry), eax: MultibootHeader.bootloaderMagic, ebx: UInt32(info),
                            gdt: window + GuestLayout.gdt)
    }

    /// QEMU's `-initrd` for a Multiboot kernel: modules separated by ',' (",," is a comma
    /// within one), each `FILE[ ARGS]`; the whole text is the module's string.
    static func modules(_ text: String) throws(LoaderError) -> [(path: String, string: String)] {
        var parts: [[UInt8]] = [[]]
        let bytes = Array(text.utf8)
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: ",") {
                if i + 1 < bytes.count, bytes[i + 1] == UInt8(ascii: ",") {
                    parts[parts.count - 1].append(bytes[i])
                    i += 2
                    continue
                }
                parts.append([])
            } else {
                parts[parts.count - 1].append(bytes[i])
            }
            i += 1
        }
        guard parts.count <= maxModules else {
            throw LoaderError(.request, "the initrd list names \(parts.count) modules; a Multiboot kernel gets at most \(maxModules)", fields: [.initrd])
        }
        let stringBytes = parts.reduce(0) { $0 + $1.count + 1 }
        guard stringBytes <= maxModuleStringBytes else {
            throw LoaderError(.request, "the initrd list's module strings take \(stringBytes) bytes; at most \(maxModuleStringBytes)", fields: [.initrd])
        }
        var specs: [(path: String, string: String)] = []
        for (n, part) in parts.enumerated() {
            let path = String(decoding: part.prefix { $0 != UInt8(ascii: " ") }, as: UTF8.self)
            guard !path.isEmpty else {
                throw LoaderError(.request, "module \(n + 1) of the initrd list \(text.quotedForMessage) names no file", fields: [.initrd])
            }
            specs.append((path, String(decoding: part, as: UTF8.self)))
        }
        return specs
    }

    private func put(_ value: UInt32, at address: UInt64) throws(LoaderError) {
        try loader.write(le(value), at: address)
    }
}
