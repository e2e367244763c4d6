import VMMKit

/// A Multiboot v1 header found in the first 8 KiB of an image.
struct MultibootHeader {
    static let magic: UInt32 = 0x1BAD_B002
    static let bootloaderMagic: UInt32 = 0x2BAD_B002
    let offset: Int
    let flags: UInt32
    /// a.out kludge fields (flag 16): header_addr, load_addr, load_end_addr, bss_end_addr, entry_addr.
    let addresses: [UInt32]

    static func find(in bytes: [UInt8], path: String) throws(LoaderError) -> MultibootHeader? {
        let r = ByteReader(bytes)
        var at = 0
        while at + 12 <= min(bytes.count, 8192) {
            if r.u32(at) == magic {
                let flags = r.u32(at + 4)
                guard magic &+ flags &+ r.u32(at + 8) == 0 else {
                    throw LoaderError(.image, "\(path): Multiboot header at offset \(hex(at)) has a bad checksum")
                }
                let unsupported = flags & 0xffff & ~UInt32(0x3)
                guard unsupported == 0 else {
                    throw LoaderError(.image, "\(path): Multiboot header asks for unsupported features (flags \(hex(unsupported)), e.g. a video mode)")
                }
                var addresses: [UInt32] = []
                if flags & (1 << 16) != 0 {
                    guard at + 32 <= bytes.count else { throw LoaderError(.image, "\(path): truncated Multiboot header") }
                    addresses = (0..<5).map { r.u32(at + 12 + $0 * 4) }
                }
                return MultibootHeader(offset: at, flags: flags, addresses: addresses)
            }
            at += 4
        }
        return nil
    }
}

/// Loads a Multiboot kernel as QEMU's `-kernel` does and builds the info structure
/// (memory size, command line, modules) in the reserved low memory.
struct Multiboot {
    // Offsets in the loader's table window (`ImageLoader.tableWindow`); the GDT is at
    // GuestLayout.gdt in the same window.
    static let info: UInt64 = 0x9000
    static let cmdline: UInt64 = 0x9400
    static let moduleList: UInt64 = 0x9800
    static let moduleName: UInt64 = 0x9900
    static let memoryMap: UInt64 = 0x9a00
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
            used = try loader.loadSegments(elf, bytes, path: path)
            kernelEnd = elf.segments.map { $0.physicalAddress + $0.memorySize }.max()!
            entry = elf.entry
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

        // The module goes on the first page boundary after the kernel, then the info
        // structures into a window neither touches.
        var module: ImageLoader.Module?
        if let initrd = request.initrd {
            module = try loader.loadModule(initrd, after: kernelEnd, thirtyTwoBit: "Multiboot")
            used.append(module!.range)
        }
        let window = try loader.tableWindow(avoiding: used, path: path)
        let info = window + Self.info

        var flags: UInt32 = 0x1 // mem_lower/mem_upper
        // RAM from 1 MiB up (none when RAM ends below 1 MiB).
        let upper = loader.ramSize > 0x10_0000 ? loader.ramSize - 0x10_0000 : 0
        try put(UInt32(min(loader.ramSize, 0x9_fc00) >> 10), at: info + 4)
        try put(UInt32(min(upper >> 10, UInt64(UInt32.max))), at: info + 8)
        let cmdline = [path, request.append].compactMap { $0 }.joined(separator: " ")
        guard cmdline.utf8.count < 1024 else { throw LoaderError(.request, "the command line (image path and append) is longer than 1023 bytes") }
        try loader.write(Array(cmdline.utf8) + [0], at: window + Self.cmdline)
        try put(UInt32(window + Self.cmdline), at: info + 16)
        flags |= 0x4
        if let module {
            let name = Array(String(module.path.split(separator: "/").last ?? "").utf8.prefix(200)) + [0]
            let list = window + Self.moduleList
            try loader.write(name, at: window + Self.moduleName)
            try put(UInt32(module.start), at: list)
            try put(UInt32(module.range.upperBound), at: list + 4)
            try put(UInt32(window + Self.moduleName), at: list + 8)
            try put(UInt32(0), at: list + 12)
            try put(UInt32(1), at: info + 20)
            try put(UInt32(list), at: info + 24)
            flags |= 0x8
        }
        // The memory map (flag 6), `ramMap`. Entries: size (20), base, length, type.
        var entries: [UInt8] = []
        for (base, length) in loader.ramMap {
            entries += le(UInt32(20)) + le(base) + le(length) + le(UInt32(1)) // 1: available
        }
        try loader.write(entries, at: window + Self.memoryMap)
        try put(UInt32(entries.count), at: info + 44)
        try put(UInt32(window + Self.memoryMap), at: info + 48)
        flags |= 0x40
        try put(flags, at: info)
        // VCPU.boot writes the flat GDT there.
        return .protected32(entry: UInt32(entry), eax: MultibootHeader.bootloaderMagic, ebx: UInt32(info),
                            gdt: window + GuestLayout.gdt)
    }

    private func put(_ value: UInt32, at address: UInt64) throws(LoaderError) {
        try loader.write(le(value), at: address)
    }
}
