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
    static let info: UInt64 = 0x9000
    static let cmdline: UInt64 = 0x9400
    static let moduleList: UInt64 = 0x9800
    static let moduleName: UInt64 = 0x9900
    let loader: ImageLoader
    let request: ImageRequest

    func boot(_ bytes: [UInt8], header: MultibootHeader) throws(LoaderError) -> BootEntry {
        let path = request.path
        var kernelEnd: UInt64
        let entry: UInt64
        if header.addresses.isEmpty {
            guard ELFImage.isELF(bytes) else {
                throw LoaderError(.image, "\(path): Multiboot image is neither ELF nor has load addresses (flag 16)")
            }
            let elf = try ELFImage(bytes, path: path)
            guard !elf.is64 else { throw LoaderError(.image, "\(path): Multiboot kernels must be ELF32 (this one is ELF64)") }
            try loader.loadSegments(elf, bytes, path: path)
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
            entry = a[4]
        }
        guard entry < 1 << 32 else { throw LoaderError(.image, "\(path): entry \(hex(entry)) is above 4 GiB") }

        var flags: UInt32 = 0x1 // mem_lower/mem_upper
        let ramKiB = loader.ramSize >> 10
        try put(UInt32(639), at: Self.info + 4)
        try put(UInt32(min(ramKiB > 1024 ? ramKiB - 1024 : 0, UInt64(UInt32.max))), at: Self.info + 8)
        let cmdline = [path, request.append].compactMap { $0 }.joined(separator: " ")
        guard cmdline.utf8.count < 1024 else { throw LoaderError(.request, "the command line (image path and append) is longer than 1023 bytes") }
        try loader.write(Array(cmdline.utf8) + [0], at: Self.cmdline)
        try put(UInt32(Self.cmdline), at: Self.info + 16)
        flags |= 0x4
        if let initrd = request.initrd {
            let module = try readFile(initrd, what: "module (initrd)", limit: loader.ramSize)
            let start = (kernelEnd + 0xfff) & ~0xfff
            try loader.checkPlacement(start, UInt64(module.count), what: "\(initrd): module (initrd)")
            // The module list holds 32-bit addresses.
            guard start + UInt64(module.count) <= 1 << 32 else {
                throw LoaderError(.image, "\(initrd): module (initrd) [\(hex(start))..<\(hex(start + UInt64(module.count)))] ends above 4 GiB, out of Multiboot's reach")
            }
            try loader.write(module, at: start)
            let name = Array(String(initrd.split(separator: "/").last ?? "").utf8.prefix(200)) + [0]
            try loader.write(name, at: Self.moduleName)
            try put(UInt32(start), at: Self.moduleList)
            try put(UInt32(start + UInt64(module.count)), at: Self.moduleList + 4)
            try put(UInt32(Self.moduleName), at: Self.moduleList + 8)
            try put(UInt32(0), at: Self.moduleList + 12)
            try put(UInt32(1), at: Self.info + 20)
            try put(UInt32(Self.moduleList), at: Self.info + 24)
            flags |= 0x8
        }
        try put(flags, at: Self.info)
        return .protected32(entry: UInt32(entry), eax: MultibootHeader.bootloaderMagic, ebx: UInt32(Self.info))
    }

    private func put(_ value: UInt32, at address: UInt64) throws(LoaderError) {
        try loader.write(withUnsafeBytes(of: value.littleEndian) { Array($0) }, at: address)
    }
}
