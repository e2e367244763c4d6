import VMMKit

/// How the boot vCPU enters the guest.
public enum BootEntry: Equatable, Sendable, CustomStringConvertible {
    /// 64-bit long mode at ring 0, identity-mapped (`VCPU.setupLongMode`), with the
    /// loader's 64 KiB table window (GDT, page tables, TSS) at `tables`.
    case longMode(entry: UInt64, stack: UInt64, tables: UInt64 = 0)
    /// 32-bit protected mode, paging off, as Multiboot and PVH specify (EAX and EBX
    /// set), with a flat GDT at `gdt`.
    case protected32(entry: UInt32, eax: UInt32, ebx: UInt32, gdt: UInt64 = GuestLayout.gdt)
    /// Real mode at segment:offset.
    case realMode(segment: UInt16, offset: UInt16)
    /// Linux's 64-bit boot protocol: long mode as `longMode` (the stack at the window's
    /// ring-0 stack top), RSI = the zero page at `bootParams`.
    case linux64(entry: UInt64, bootParams: UInt64, tables: UInt64)

    /// The window is named only when it moved from its usual place.
    public var description: String {
        switch self {
        case let .longMode(entry, stack, tables):
            "longMode(entry: \(entry), stack: \(stack)" + (tables == 0 ? ")" : ", tables: \(hex(tables)))")
        case let .protected32(entry, eax, ebx, gdt):
            "protected32(entry: \(entry), eax: \(eax), ebx: \(ebx)" + (gdt == GuestLayout.gdt ? ")" : ", gdt: \(hex(gdt)))")
        case let .realMode(segment, offset): "realMode(segment: \(segment), offset: \(offset))"
        case let .linux64(entry, bootParams, tables): "linux64(entry: \(hex(entry)), bootParams: \(hex(bootParams)), tables: \(hex(tables)))"
        }
    }
}

/// What to boot: an image file and how to treat it.
public struct ImageRequest: Sendable, Equatable {
    /// The image file (named in every error).
    public var path: String
    /// The command line (QEMU's `-append`): Multiboot's follows the image path, PVH's
    /// and Linux's are this alone.
    public var append: String?
    /// QEMU's `-initrd`: for Multiboot, modules separated by ',' (",," for a comma), each
    /// `FILE[ ARGS]` (the whole text is the module's string); for PVH and Linux, one file.
    public var initrd: String?
    /// A flat binary's load address; giving it (or `entry`) makes the image flat.
    public var loadAddress: UInt64?
    /// A flat binary's entry point (default: its load address).
    public var entry: UInt64?
    /// A flat binary's mode: 16 (real mode) or 64 (long mode).
    public var flatMode: Int

    public init(path: String, append: String? = nil, initrd: String? = nil,
                loadAddress: UInt64? = nil, entry: UInt64? = nil, flatMode: Int = 64) {
        self.path = path
        self.append = append
        self.initrd = initrd
        self.loadAddress = loadAddress
        self.entry = entry
        self.flatMode = flatMode
    }
}

/// Loads an image into guest RAM: ELF64, Multiboot v1 (ELF32 or a.out kludge), an ELF
/// with a PVH entry note (as QEMU's `-kernel` boots it), a Linux bzImage (the 64-bit
/// boot protocol) or a flat binary, and says how to enter it. Every error names the file and the problem.
///
/// ```swift
/// let entry = try ImageLoader(memory: vm.memory, ramSize: 64 << 20)
///     .boot(ImageRequest(path: "kernel.elf"), on: vcpu)
/// ```
public struct ImageLoader: Sendable {
    /// The first page (real-mode IVT and BIOS data) is never loaded into.
    public static let firstPageEnd: UInt64 = 0x1000
    /// The loader's GDT, page tables, TSS, Multiboot or PVH start info and command line live in one
    /// 64 KiB window: [0x0, 0x10000) unless the image or a module is there, else the
    /// first 64 KiB-aligned window of low RAM they leave free (`TableWindow`).
    public static let tableWindowSize: UInt64 = 0x10000
    /// The most RAM QEMU's `pc` puts below the MMIO hole (3.5 GiB: it splits at 3 GiB from
    /// there up): what the loader's 32-bit structures and the stack are placed below,
    /// whatever `ramSize` a caller gives.
    public static let maxLowRAM: UInt64 = 0xe000_0000
    public let memory: GuestMemory
    /// Guest RAM below the MMIO hole is `[0, ramSize)`: every byte the image loads must lie inside it.
    /// `load` refuses (a `.request` error naming both) a `ramSize` that `memory`'s regions
    /// do not cover from address 0 without a gap, or that leaves no RAM past the first page.
    public let ramSize: UInt64
    /// RAM above the hole, `[4 GiB, 4 GiB + highRAMSize)` (QEMU's pc machine with 3.5 GiB
    /// or more): only reported to the guest (the Multiboot or PVH memory map), never loaded into.
    /// `load` refuses (a `.request` error naming it) one that `memory`'s regions do not
    /// cover from 4 GiB without a gap, that runs past 2^64, or with a `ramSize` above 4 GiB.
    public let highRAMSize: UInt64
    /// The tables a PC's BIOS would leave for a VM with the in-kernel irqchip
    /// (`PCFirmware`: MP and ACPI), or none. Every image but a real-mode one gets them.
    public let firmware: PCFirmware?

    public init(memory: GuestMemory, ramSize: UInt64, highRAMSize: UInt64 = 0, firmware: PCFirmware? = nil) {
        self.memory = memory
        self.ramSize = ramSize
        self.highRAMSize = highRAMSize
        self.firmware = firmware
    }

    /// Loads the image and sets up `vcpu` to enter it: one call from file to bootable vCPU.
    @discardableResult
    public func boot(_ request: ImageRequest, on vcpu: VCPU) throws -> BootEntry {
        let entry = try load(request)
        try vcpu.boot(entry)
        return entry
    }

    /// Reads `request.path` and loads it; the returned entry state is for `VCPU.boot(_:)`.
    public func load(_ request: ImageRequest) throws(LoaderError) -> BootEntry {
        try checkRAMSize() // before reading a file of up to ramSize bytes
        return try load(readFile(request.path, what: "image", limit: ramSize), request)
    }

    /// Loads an image already in memory (`request.path` only names it in errors).
    public func load(_ bytes: [UInt8], _ request: ImageRequest) throws(LoaderError) -> BootEntry {
        try checkRAMSize()
        if request.loadAddress != nil || request.entry != nil {
            try refuseWithoutStartInfo(request, for: "a flat binary")
            return try loadFlat(bytes, request)
        }
        // Every other image says how it is entered: a mode asked of it was ignored.
        guard request.flatMode == 64 else {
            throw LoaderError(.request, "\(request.path): mode \(request.flatMode) is for a flat binary (with a load address); this image is entered as its format says", fields: [.mode])
        }
        // QEMU's order: a Linux setup header, a Multiboot header, then the PVH note.
        if LinuxBoot.isBzImage(bytes) {
            return try LinuxBoot(loader: self, request: request).boot(bytes)
        }
        if let header = try MultibootHeader.find(in: bytes, path: request.path) {
            return try Multiboot(loader: self, request: request).boot(bytes, header: header)
        }
        guard ELFImage.isELF(bytes) else {
            try refuseWithoutStartInfo(request, for: "an ELF64 image")
            throw LoaderError(.image, "\(request.path): not an ELF64, PVH, Multiboot or Linux bzImage; for a flat binary give a load address (and entry)")
        }
        let elf = try ELFImage(bytes, path: request.path)
        if let entry = elf.pvhEntry {
            // QEMU's load_elfboot asks for EM_X86_64, which load_elf takes as x86-64 or
            // i386 in either class.
            guard elf.machine == 62 || elf.machine == 3 else {
                throw LoaderError(.image, "\(request.path): ELF machine \(elf.machine) is neither x86-64 nor i386")
            }
            return try PVH(loader: self, request: request).boot(elf, bytes, entry: entry)
        }
        try refuseWithoutStartInfo(request, for: "an ELF64 image")
        guard elf.is64 else {
            throw LoaderError(.image, "\(request.path): a 32-bit ELF without a Multiboot header or a PVH entry note cannot be booted")
        }
        guard elf.machine == 62 else { throw LoaderError(.image, "\(request.path): ELF machine \(elf.machine) is not x86-64") }
        let used = try loadSegments(elf, bytes, path: request.path)
        // The boot's page tables map memory 1:1: the vCPU starts at the physical entry.
        let entry = elf.physicalEntry
        try ELFImage.checkEntry(entry, in: used, path: request.path)
        let tables = try placeTables(avoiding: used, path: request.path).window
        return .longMode(entry: entry, stack: longModeStack(avoiding: used, window: tables), tables: tables)
    }

    /// A command line and a module reach the guest through Multiboot's or PVH's start
    /// information or Linux's zero page only: for another image they were dropped
    /// without a word.
    func refuseWithoutStartInfo(_ request: ImageRequest, for kind: String) throws(LoaderError) {
        guard request.append != nil || request.initrd != nil else { return }
        let what = request.append != nil ? "a command line (append)" : "a module (initrd)"
        throw LoaderError(.request, "\(request.path): \(what) is passed to Multiboot, PVH and Linux images only, and this is \(kind)",
                          fields: [request.append != nil ? .append : .initrd])
    }

    /// `ramSize` must be RAM the memory has: the stack and the tables go near its end.
    /// `highRAMSize` too: the memory map the guest gets reports it as RAM.
    func checkRAMSize() throws(LoaderError) {
        guard ramSize > Self.firstPageEnd else {
            throw LoaderError(.request, "ramSize \(hex(ramSize)) leaves no guest RAM past the first page [0x0..<\(hex(Self.firstPageEnd))]")
        }
        let high = "highRAMSize \(hex(highRAMSize))"
        let (highEnd, overflow) = Self.highRAMStart.addingReportingOverflow(highRAMSize)
        if highRAMSize > 0 {
            guard !overflow else {
                throw LoaderError(.request, "\(high): RAM from 4 GiB runs past the end of the 64-bit address space")
            }
            guard ramSize <= Self.highRAMStart else {
                throw LoaderError(.request, "ramSize \(hex(ramSize)) and \(high) overlap: RAM below the MMIO hole ends above 4 GiB, where the RAM above it starts")
            }
        }
        try checkCovered(0, ramSize, what: "ramSize \(hex(ramSize)) (\(describeSize(ramSize)))")
        if highRAMSize > 0 { try checkCovered(Self.highRAMStart, highEnd, what: "\(high) (RAM from 4 GiB)") }
    }

    /// Where the RAM above the MMIO hole starts.
    static let highRAMStart: UInt64 = 1 << 32

    /// Regions of `memory` cover [start, end) without a gap.
    private func checkCovered(_ start: UInt64, _ end: UInt64, what: String) throws(LoaderError) {
        var covered = start
        while covered < end {
            guard let region = memory.region(containing: covered) else {
                let regions = memory.regions.map(\.description).joined(separator: ", ")
                throw LoaderError(.request, "\(what) is more than the guest memory holds: no memory region covers \(hex(covered)) (regions: \(regions.isEmpty ? "none" : regions))")
            }
            covered = region.endAddress
        }
    }

    /// The long-mode stack top: the end of RAM below the MMIO hole.
    var defaultStack: UInt64 { min(ramSize, Self.maxLowRAM) - 0x10 }

    /// `defaultStack`, unless the image lies in its page: then the table window's stack,
    /// as a 64-bit Linux boot's. An image that filled RAM to its end had its first call's
    /// return address written over its own bytes (a kernel that cleared its BSS there
    /// triple-faulted on the `ret`).
    func longModeStack(avoiding used: [Range<UInt64>], window: UInt64) -> UInt64 {
        let page = (defaultStack & ~0xfff)..<(defaultStack & ~0xfff) + 0x1000
        return used.contains { $0.overlaps(page) } ? window + GuestLayout.kernelStackTop : defaultStack
    }

    /// Copies each segment's file bytes and returns the guest ranges the segments occupy.
    /// A segment's zero tail (memsz past filesz, the BSS) is kept as QEMU's `load_elf`
    /// keeps it (include/hw/elf_ops.h): only when it overlaps no other PT_LOAD segment's
    /// [paddr, paddr + memsz), or the segment is its file bytes alone (images whose startup
    /// code clears a BSS laid over other segments). A kept tail thus covers no byte another
    /// segment writes, and guest RAM starts zeroed (a fresh memfd or anonymous mapping):
    /// nothing of it is written, so the work is bounded by the file's size, never by memsz,
    /// and demand-paged pages stay untouched.
    @discardableResult
    func loadSegments(_ elf: ELFImage, _ bytes: [UInt8], path: String) throws(LoaderError) -> [Range<UInt64>] {
        var used: [Range<UInt64>] = []
        for s in elf.segments {
            let size = Self.keepsBSS(s, among: elf.segments) ? s.memorySize : s.fileSize
            // A segment of no bytes places nothing, wherever it says (QEMU's load_elf skips it).
            guard size > 0 else { continue }
            try checkPlacement(s.physicalAddress, size, what: "\(path): segment \(s.index)")
            used.append(s.physicalAddress..<s.physicalAddress + size)
            let start = Int(s.fileOffset)
            try write(Array(bytes[start..<start + Int(s.fileSize)]), at: s.physicalAddress)
        }
        return used
    }

    /// Whether `s` keeps its BSS: it has none, or no other segment's [paddr, paddr + memsz)
    /// overlaps it, by QEMU's test (an empty segment inside it counts). Ends past 2^64 are
    /// taken as 2^64 - 1 (QEMU's wrap; such a segment is refused where it is placed).
    static func keepsBSS(_ s: ELFImage.Segment, among segments: [ELFImage.Segment]) -> Bool {
        guard s.memorySize > s.fileSize else { return true }
        func end(_ a: UInt64, _ b: UInt64) -> UInt64 {
            let (sum, overflow) = a.addingReportingOverflow(b)
            return overflow ? .max : sum
        }
        let zeroStart = end(s.physicalAddress, s.fileSize), zeroEnd = end(s.physicalAddress, s.memorySize)
        return !segments.contains { other in
            other.index != s.index && !(other.physicalAddress >= zeroEnd || zeroStart >= end(other.physicalAddress, other.memorySize))
        }
    }

    /// Refuses a range outside RAM or in the first page.
    func checkPlacement(_ address: UInt64, _ size: UInt64, what: String, avoidFirstPage: Bool = true) throws(LoaderError) {
        let (end, overflow) = address.addingReportingOverflow(size)
        // A wrapped end would name a range that does not exist.
        guard !overflow else {
            throw LoaderError(.image, "\(what) of \(size) bytes at \(hex(address)) runs past the end of the 64-bit address space; guest RAM is [0x0..<\(hex(ramSize))] (\(describeSize(ramSize)))")
        }
        let range = "[\(hex(address))..<\(hex(end))]"
        guard end <= ramSize else {
            // RAM above 4 GiB is the guest's to use, not a place images load (as QEMU's).
            let high = highRAMSize > 0 ? "; the \(describeSize(highRAMSize)) above 4 GiB is not loaded into" : ""
            let where_ = highRAMSize > 0 ? "the guest RAM below the MMIO hole" : "guest RAM"
            throw LoaderError(.image, "\(what) \(range) lies outside \(where_) [0x0..<\(hex(ramSize))] (\(describeSize(ramSize)))\(high)")
        }
        guard !avoidFirstPage || address >= Self.firstPageEnd || size == 0 else {
            throw LoaderError(.image, "\(what) \(range) overlaps the first page [0x0..<\(hex(Self.firstPageEnd))] (real-mode interrupt vectors)")
        }
    }

    func write(_ bytes: [UInt8], at address: UInt64) throws(LoaderError) {
        do { try memory.writeBytes(address, bytes) } catch {
            throw LoaderError(.image, "cannot write \(bytes.count) bytes at \(hex(address)): \(error)")
        }
    }

    private func loadFlat(_ bytes: [UInt8], _ r: ImageRequest) throws(LoaderError) -> BootEntry {
        guard let load = r.loadAddress else { throw LoaderError(.request, "an entry point needs a load address for a flat binary", fields: [.entry]) }
        // Nothing to enter: a bad image, not a bad flag (the entry check below would blame --entry).
        guard !bytes.isEmpty else { throw LoaderError(.image, "\(r.path): the flat image is empty (0 bytes)") }
        let entry = r.entry ?? load
        // Real mode uses no loader tables and may own its first page.
        try checkPlacement(load, UInt64(bytes.count), what: "\(r.path): flat image", avoidFirstPage: r.flatMode != 16)
        guard entry >= load, entry < load + UInt64(bytes.count) else {
            throw LoaderError(.request, "entry \(hex(entry)) is outside the image loaded at [\(hex(load))..<\(hex(load + UInt64(bytes.count)))]",
                              fields: [.entry, .loadAddress])
        }
        try write(bytes, at: load)
        switch r.flatMode {
        case 16:
            guard load % 16 == 0, load < 0x10_0000, entry - load <= 0xffff else {
                throw LoaderError(.request, "a 16-bit flat image must load below 1 MiB at a 16-byte boundary, with the entry within 64 KiB",
                                  fields: [.loadAddress, .entry, .mode])
            }
            return .realMode(segment: UInt16(load >> 4), offset: UInt16(entry - load))
        case 64:
            let image = load..<load + UInt64(bytes.count)
            let tables = try placeTables(avoiding: [image], path: r.path).window
            return .longMode(entry: entry, stack: longModeStack(avoiding: [image], window: tables), tables: tables)
        default:
            throw LoaderError(.request, "flat image mode \(r.flatMode) is not 16 or 64", fields: [.mode])
        }
    }
}

/// Reads a whole regular file of at most `limit` bytes (larger cannot fit in guest RAM).
func readFile(_ path: String, what: String, limit: UInt64) throws(LoaderError) -> [UInt8] {
    do { return try FileBytes.read(path, limit: limit) } catch {
        throw LoaderError(.image, "\(path): cannot read \(what): \(error)")
    }
}
