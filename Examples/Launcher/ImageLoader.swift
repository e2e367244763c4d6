import VMMKit

/// How the boot vCPU enters the guest.
enum BootEntry: Equatable {
    case longMode(entry: UInt64, stack: UInt64)
    case protected32(entry: UInt32, eax: UInt32, ebx: UInt32)
    case realMode(segment: UInt16, offset: UInt16)
}

/// What `vmm run` was asked to boot.
struct ImageRequest {
    var path: String
    var append: String?
    var initrd: String?
    var loadAddress: UInt64?
    var entry: UInt64?
    var flatMode: Int = 64
}

/// Loads an image into guest RAM: ELF64, Multiboot v1 (ELF32 or a.out kludge) or a
/// flat binary, and says how to enter it. Every error names the file and the problem.
struct ImageLoader {
    /// The low 64 KiB hold the loader's GDT, page tables, TSS and multiboot info.
    static let reservedEnd: UInt64 = 0x10000
    let memory: GuestMemory
    let ramSize: UInt64

    func load(_ request: ImageRequest) throws(LauncherError) -> BootEntry {
        let bytes = try readFile(request.path, what: "image")
        if request.loadAddress != nil || request.entry != nil {
            return try loadFlat(bytes, request)
        }
        if let header = try MultibootHeader.find(in: bytes, path: request.path) {
            return try Multiboot(loader: self, request: request).boot(bytes, header: header)
        }
        guard ELFImage.isELF(bytes) else {
            throw LauncherError(.image, "\(request.path): not an ELF64 or Multiboot image; for a flat binary pass --load-addr (and --entry)")
        }
        let elf = try ELFImage(bytes, path: request.path)
        guard elf.is64 else {
            throw LauncherError(.image, "\(request.path): a 32-bit ELF without a Multiboot header cannot be booted")
        }
        guard elf.machine == 62 else { throw LauncherError(.image, "\(request.path): ELF machine \(elf.machine) is not x86-64") }
        try loadSegments(elf, bytes, path: request.path)
        let stack = min(ramSize, 0xc000_0000) - 0x10
        return .longMode(entry: elf.entry, stack: stack)
    }

    func loadSegments(_ elf: ELFImage, _ bytes: [UInt8], path: String) throws(LauncherError) {
        for s in elf.segments {
            try checkPlacement(s.physicalAddress, s.memorySize, what: "\(path): segment \(s.index)")
            let start = Int(s.fileOffset)
            try write(Array(bytes[start..<start + Int(s.fileSize)]), at: s.physicalAddress)
            if s.memorySize > s.fileSize {
                try write([UInt8](repeating: 0, count: Int(s.memorySize - s.fileSize)), at: s.physicalAddress + s.fileSize)
            }
        }
    }

    /// Refuses a range outside RAM or over the loader's reserved low 64 KiB.
    func checkPlacement(_ address: UInt64, _ size: UInt64, what: String, avoidTables: Bool = true) throws(LauncherError) {
        let (end, overflow) = address.addingReportingOverflow(size)
        let range = "[\(hex(address))..<\(hex(end))]"
        guard !overflow, end <= ramSize else {
            throw LauncherError(.image, "\(what) \(range) lies outside guest RAM [0x0..<\(hex(ramSize))] (--memory \(Sizes.describe(ramSize)))")
        }
        guard !avoidTables || address >= Self.reservedEnd || size == 0 else {
            throw LauncherError(.image, "\(what) \(range) overlaps the loader's tables in [0x0..<\(hex(Self.reservedEnd))]")
        }
    }

    func write(_ bytes: [UInt8], at address: UInt64) throws(LauncherError) {
        do { try memory.writeBytes(address, bytes) } catch {
            throw LauncherError(.image, "cannot write \(bytes.count) bytes at \(hex(address)): \(error)")
        }
    }

    private func loadFlat(_ bytes: [UInt8], _ r: ImageRequest) throws(LauncherError) -> BootEntry {
        guard let load = r.loadAddress else { throw LauncherError(.usage, "--entry needs --load-addr for a flat binary") }
        let entry = r.entry ?? load
        // Real mode uses no loader tables, so a boot sector at 0x7c00 is fine.
        try checkPlacement(load, UInt64(bytes.count), what: "\(r.path): flat image", avoidTables: r.flatMode != 16)
        guard entry >= load, entry < load + UInt64(bytes.count) else {
            throw LauncherError(.usage, "--entry \(hex(entry)) is outside the image loaded at [\(hex(load))..<\(hex(load + UInt64(bytes.count)))]")
        }
        try write(bytes, at: load)
        switch r.flatMode {
        case 16:
            guard load % 16 == 0, load < 0x10_0000, entry - load <= 0xffff else {
                throw LauncherError(.usage, "a 16-bit flat image must load below 1 MiB at a 16-byte boundary, with the entry within 64 KiB")
            }
            return .realMode(segment: UInt16(load >> 4), offset: UInt16(entry - load))
        default:
            return .longMode(entry: entry, stack: min(ramSize, 0xc000_0000) - 0x10)
        }
    }
}

func readFile(_ path: String, what: String) throws(LauncherError) -> [UInt8] {
    do { return try FileBytes.read(path) } catch {
        throw LauncherError(.image, "\(path): cannot read \(what): \(error)")
    }
}
