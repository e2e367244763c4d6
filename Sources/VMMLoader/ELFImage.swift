/// The parts of an ELF file a loader needs: class, machine, entry, PT_LOAD segments and
/// the PVH entry note, every offset checked against the file's size so a truncated file
/// is an error, not a crash.
public struct ELFImage: Sendable {
    public struct Segment: Sendable, Equatable {
        public let index: Int
        public let fileOffset: UInt64
        public let physicalAddress: UInt64
        public let fileSize: UInt64
        public let memorySize: UInt64
        /// Where the image is linked (`p_vaddr`): the loaders place segments at
        /// `physicalAddress`, and use this only to find the entry's physical address.
        public var virtualAddress: UInt64 = 0
        /// `p_flags` (PF_X = 1).
        public var flags: UInt32 = 0
    }

    public let is64: Bool
    public let machine: UInt16
    public let entry: UInt64
    public let segments: [Segment]
    /// The PVH entry point (Xen's `XEN_ELFNOTE_PHYS32_ENTRY` note), if the image has one.
    public let pvhEntry: UInt32?

    public static func isELF(_ bytes: [UInt8]) -> Bool { bytes.starts(with: [0x7f, 0x45, 0x4c, 0x46]) }

    /// Parses `bytes` (from `path`, named in errors).
    public init(_ bytes: [UInt8], path: String) throws(LoaderError) {
        func bad(_ why: String) -> LoaderError { LoaderError(.image, "\(path): \(why)") }
        guard Self.isELF(bytes), bytes.count >= 52 else { throw bad("truncated ELF header (\(bytes.count) bytes)") }
        guard bytes[4] == 1 || bytes[4] == 2 else { throw bad("unknown ELF class \(bytes[4])") }
        guard bytes[5] == 1 else { throw bad("big-endian ELF is not supported") }
        is64 = bytes[4] == 2
        let reader = ByteReader(bytes)
        machine = reader.u16(18)
        let phoff: UInt64, phentsize: Int, phnum: Int
        if is64 {
            guard bytes.count >= 64 else { throw bad("truncated ELF64 header (\(bytes.count) bytes)") }
            entry = reader.u64(24)
            phoff = reader.u64(32)
            phentsize = Int(reader.u16(54))
            phnum = Int(reader.u16(56))
        } else {
            entry = UInt64(reader.u32(24))
            phoff = UInt64(reader.u32(28))
            phentsize = Int(reader.u16(42))
            phnum = Int(reader.u16(44))
        }
        let minimum = is64 ? 56 : 32
        guard phnum > 0 else { throw bad("no program headers") }
        guard phentsize >= minimum else { throw bad("program header size \(phentsize) is below \(minimum)") }
        // Linux's own limit (`elf_read_phdrs`). Each header is checked against the ones
        // before it: 65,535 of them took a load 12 minutes.
        guard phentsize * phnum <= Self.maxProgramHeaderBytes else {
            throw bad("\(phnum) program headers of \(phentsize) bytes are over \(Self.maxProgramHeaderBytes / 1024) KiB (Linux's limit)")
        }
        // phentsize * phnum fits (both are 16-bit); phoff is the file's and may be anything.
        let (tableEnd, overflow) = phoff.addingReportingOverflow(UInt64(phentsize * phnum))
        guard !overflow else {
            throw bad("program header offset \(hex(phoff)) plus \(phnum) entries of \(phentsize) bytes runs past 2^64")
        }
        guard phoff < UInt64(bytes.count), tableEnd <= UInt64(bytes.count) else {
            throw bad("truncated: the program headers need bytes up to \(hex(tableEnd)) but the file has \(hex(bytes.count))")
        }
        var loads: [Segment] = []
        // What the load segments copy: a file's bytes once, give or take the pages two
        // segments share. Many segments naming the same megabytes would copy them again
        // and again, for as long as the file makes them.
        var copied: UInt64 = 0
        for i in 0..<phnum {
            let at = Int(phoff) + i * phentsize
            guard reader.u32(at) == 1 else { continue } // PT_LOAD
            let s: Segment
            if is64 {
                s = Segment(index: i, fileOffset: reader.u64(at + 8), physicalAddress: reader.u64(at + 24),
                            fileSize: reader.u64(at + 32), memorySize: reader.u64(at + 40),
                            virtualAddress: reader.u64(at + 16), flags: reader.u32(at + 4))
            } else {
                s = Segment(index: i, fileOffset: UInt64(reader.u32(at + 4)), physicalAddress: UInt64(reader.u32(at + 12)),
                            fileSize: UInt64(reader.u32(at + 16)), memorySize: UInt64(reader.u32(at + 20)),
                            virtualAddress: UInt64(reader.u32(at + 8)), flags: reader.u32(at + 24))
            }
            let (end, overflow) = s.fileOffset.addingReportingOverflow(s.fileSize)
            // A wrapped end would name an offset the file does have.
            guard !overflow else { throw bad("segment \(i): \(s.fileSize) bytes at file offset \(hex(s.fileOffset)) run past 2^64") }
            guard end <= UInt64(bytes.count) else {
                throw bad("truncated: segment \(i) needs file bytes up to \(hex(end)) but the file has \(hex(bytes.count))")
            }
            guard s.memorySize >= s.fileSize else { throw bad("segment \(i) has memsz below filesz") }
            copied += s.fileSize
            guard copied <= UInt64(bytes.count) + UInt64(phnum) * 4096 else {
                throw bad("the load segments up to segment \(i) copy \(copied) bytes from a file of \(bytes.count): the same bytes named again and again")
            }
            loads.append(s)
        }
        guard !loads.isEmpty else { throw bad("no PT_LOAD segment") }
        segments = loads
        pvhEntry = try ELFNotes.pvhEntry(bytes, is64: is64, phoff: Int(phoff), phentsize: phentsize, phnum: phnum, bad: bad)
    }

    static let maxProgramHeaderBytes = 64 << 10

    /// `entry` as a physical address, by QEMU's rule (`load_elf`): `e_entry` is
    /// virtual, so when it lies in the file bytes of an executable segment linked
    /// elsewhere than it loads (a higher-half kernel: linked at 0xc0100000, loaded at 1 MiB
    /// with `AT()`), it moves with that segment; the last such segment wins, as in QEMU.
    /// Otherwise `entry` as it is.
    public var physicalEntry: UInt64 {
        var result = entry
        for s in segments where s.virtualAddress != s.physicalAddress && s.flags & 1 != 0
            && entry >= s.virtualAddress && entry - s.virtualAddress < s.fileSize {
            // entry - vaddr < filesz <= memsz, and the segment's physical end fits (the
            // loader checked it): no wrap. The subtraction is that segment's offset.
            result = s.physicalAddress &+ (entry - s.virtualAddress)
        }
        return result
    }

    /// Refuses an entry point (physical) outside every range an image was loaded into:
    /// the vCPU would start in memory nothing was written to.
    static func checkEntry(_ entry: UInt64, in loaded: [Range<UInt64>], path: String) throws(LoaderError) {
        guard !loaded.contains(where: { $0.contains(entry) }) else { return }
        let ranges = loaded.map { "[\(hex($0.lowerBound))..<\(hex($0.upperBound))]" }.joined(separator: ", ")
        throw LoaderError(.image, "\(path): entry point \(hex(entry)) lies outside what the image loads (\(ranges.isEmpty ? "nothing: every segment is empty" : ranges))")
    }
}

/// Little-endian reads at offsets the caller has bounds-checked.
struct ByteReader {
    let bytes: [UInt8]
    init(_ bytes: [UInt8]) { self.bytes = bytes }
    func u16(_ at: Int) -> UInt16 { UInt16(bytes[at]) | UInt16(bytes[at + 1]) << 8 }
    func u32(_ at: Int) -> UInt32 { UInt32(u16(at)) | UInt32(u16(at + 2)) << 16 }
    func u64(_ at: Int) -> UInt64 { UInt64(u32(at)) | UInt64(u32(at + 4)) << 32 }
}

