import Glibc
import SystemPackage

/// Reads a shared library's exported data the way the dynamic loader would find it,
/// from the file, without mapping or running any of it: program headers, the dynamic
/// section, the dynamic symbol table (through its GNU or SysV hash table, as `dlsym`
/// looks it up) and the relocations that fill in pointers. The file is hostile input:
/// every offset, size and count is checked with overflow-safe arithmetic before a
/// read, and every read is a bounded `pread`. x86-64 ELF64 little-endian only.
struct PluginELFFile {
    /// What was wrong, without the file's name (the caller adds it).
    struct Malformed: Error { let message: String; init(_ m: String) { message = m } }

    /// A pointer-sized slot's value after relocation.
    enum Pointer: Equatable {
        case null
        case address(UInt64)
        /// Bound at load time to a symbol of another library: not readable from this file.
        case external
    }

    private struct Segment { let vaddr: UInt64, offset: UInt64, fileSize: UInt64 }
    private struct Relocation { let type: UInt32, symbol: UInt32, addend: UInt64? }

    /// Closes the descriptor however the reader ends, also when parsing throws.
    private final class Descriptor {
        let raw: Int32
        init(_ raw: Int32) { self.raw = raw }
        deinit { Glibc.close(raw) }
    }

    private let file: Descriptor
    private var fd: Int32 { file.raw }
    private let size: UInt64
    private var segments: [Segment] = []
    private var dynamic: [Int64: UInt64] = [:]

    /// Bounds on what a plausible plugin needs (refused beyond, never allocated).
    static let maxTable = 64 << 20
    static let maxString = 4096
    /// Symbols in one hash chain (real ones hold a few; each is a read).
    static let maxChain = 1 << 16

    init(path: String) throws(Malformed) {
        let opened: (fd: Int32, size: UInt64)
        do { opened = try RegularFile.openForReading(path) } catch {
            if case let .open(e) = error { throw Malformed("cannot open: \(e.vmmDescription)") }
            throw Malformed("not a regular file (a plugin is a shared library, .so)")
        }
        file = Descriptor(opened.fd)
        size = opened.size
        try parseHeaders()
    }

    // MARK: Bounded reads

    private func read(_ offset: UInt64, _ count: Int) throws(Malformed) -> [UInt8] {
        guard count >= 0, count <= Self.maxTable else { throw Malformed("a table of \(count) bytes is implausibly large") }
        let (end, overflow) = offset.addingReportingOverflow(UInt64(count))
        guard !overflow, end <= size else {
            throw Malformed("bytes \(offset)..<\(offset &+ UInt64(count)) lie outside the file (\(size) bytes)")
        }
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, count - done, off_t(offset) + off_t(done)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw Malformed("short read at offset \(offset) (the file changed?)") }
            done += n
        }
        return bytes
    }

    private static func u16(_ b: [UInt8], _ at: Int) -> UInt16 { UInt16(b[at]) | UInt16(b[at + 1]) << 8 }
    private static func u32(_ b: [UInt8], _ at: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(b[at + $1]) << (8 * $1) } }
    private static func u64(_ b: [UInt8], _ at: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(b[at + $1]) << (8 * $1) } }

    /// The file offset of `count` bytes at virtual address `vaddr`, all inside one
    /// segment's file image (bytes past p_filesz are zero-fill, not in the file).
    private func fileOffset(_ vaddr: UInt64, _ count: Int, what: String) throws(Malformed) -> UInt64 {
        for s in segments where vaddr >= s.vaddr && vaddr - s.vaddr < s.fileSize {
            guard UInt64(count) <= s.fileSize - (vaddr - s.vaddr) else { break }
            return s.offset + (vaddr - s.vaddr)
        }
        throw Malformed("\(what) at 0x\(String(vaddr, radix: 16)) is not in the file's loadable data")
    }

    private func readVirtual(_ vaddr: UInt64, _ count: Int, what: String) throws(Malformed) -> [UInt8] {
        try read(try fileOffset(vaddr, count, what: what), count)
    }

    // MARK: Headers

    private mutating func parseHeaders() throws(Malformed) {
        guard size >= 64 else { throw Malformed("not an ELF file (\(size) bytes)") }
        let h = try read(0, 64)
        guard h[0] == 0x7f, h[1] == 0x45, h[2] == 0x4c, h[3] == 0x46 else { throw Malformed("not an ELF file (bad magic)") }
        guard h[4] == 2, h[5] == 1 else { throw Malformed("not a 64-bit little-endian ELF file") }
        guard Self.u16(h, 16) == 3 else { throw Malformed("not a shared object (ELF type \(Self.u16(h, 16)))") }
        guard Self.u16(h, 18) == 62 else { throw Malformed("not built for x86-64 (ELF machine \(Self.u16(h, 18)))") }
        let phoff = Self.u64(h, 32), phentsize = Int(Self.u16(h, 54)), phnum = Int(Self.u16(h, 56))
        guard phentsize >= 56, phnum > 0, phnum < 0xffff else {
            throw Malformed("bad program header table (\(phnum) entries of \(phentsize) bytes)")
        }
        let table = try read(phoff, phentsize * phnum)
        var dynamicRange: (UInt64, UInt64)?
        for i in 0..<phnum {
            let at = i * phentsize
            let type = Self.u32(table, at)
            let offset = Self.u64(table, at + 8), vaddr = Self.u64(table, at + 16), fileSize = Self.u64(table, at + 32)
            if type == 1 { // PT_LOAD
                guard !offset.addingReportingOverflow(fileSize).overflow, !vaddr.addingReportingOverflow(fileSize).overflow,
                      offset + fileSize <= size else {
                    throw Malformed("loadable segment \(i) (offset \(offset), \(fileSize) bytes) lies outside the file")
                }
                segments.append(Segment(vaddr: vaddr, offset: offset, fileSize: fileSize))
            } else if type == 2 { // PT_DYNAMIC
                dynamicRange = (offset, fileSize)
            }
        }
        guard let (dynOffset, dynSize) = dynamicRange else { throw Malformed("no dynamic section (not a shared library)") }
        guard dynSize <= UInt64(Self.maxTable) else { throw Malformed("dynamic section of \(dynSize) bytes") }
        let dyn = try read(dynOffset, Int(dynSize))
        for at in stride(from: 0, to: dyn.count - 15, by: 16) {
            let tag = Int64(bitPattern: Self.u64(dyn, at))
            if tag == 0 { break } // DT_NULL
            if dynamic[tag] == nil { dynamic[tag] = Self.u64(dyn, at + 8) }
        }
    }

    // MARK: Symbols

    /// The value (virtual address) of the defined, exported dynamic symbol `name`,
    /// or nil if the file does not export it.
    func exportedSymbol(_ name: String) throws(Malformed) -> UInt64? {
        guard let symtab = dynamic[6], let strtab = dynamic[5], let strsz = dynamic[10] else {
            throw Malformed("no dynamic symbol table")
        }
        let syment = dynamic[11] ?? 24
        guard syment >= 24, syment <= 4096 else { throw Malformed("dynamic symbols of \(syment) bytes each") }
        let wanted = Array(name.utf8)
        // Whether symbol `index` is `name`, defined here and not local; its value if so.
        func match(_ index: UInt32) throws(Malformed) -> UInt64? {
            let (offset, o1) = UInt64(index).multipliedReportingOverflow(by: syment)
            let (addr, o2) = symtab.addingReportingOverflow(offset)
            guard !o1, !o2 else { throw Malformed("dynamic symbol \(index) is outside the address space") }
            let sym = try readVirtual(addr, 24, what: "dynamic symbol \(index)")
            let nameOffset = UInt64(Self.u32(sym, 0))
            guard nameOffset < strsz, UInt64(wanted.count) < strsz - nameOffset else { return nil }
            let bytes = try readVirtual(strtab &+ nameOffset, wanted.count + 1, what: "the name of dynamic symbol \(index)")
            guard bytes.last == 0, Array(bytes.dropLast()) == wanted else { return nil }
            let binding = sym[4] >> 4, section = Self.u16(sym, 6)
            guard section != 0, binding == 1 || binding == 2 else { return nil } // defined, GLOBAL or WEAK
            return Self.u64(sym, 8)
        }
        if let gnu = dynamic[0x6fff_fef5] { return try gnuLookup(gnu, wanted, match) }
        if let sysv = dynamic[4] { return try sysvLookup(sysv, wanted, match) }
        throw Malformed("no symbol hash table (DT_GNU_HASH or DT_HASH)")
    }

    private func gnuLookup(_ table: UInt64, _ name: [UInt8], _ match: (UInt32) throws(Malformed) -> UInt64?) throws(Malformed) -> UInt64? {
        let header = try readVirtual(table, 16, what: "the GNU hash table")
        let nbuckets = Self.u32(header, 0), symoffset = Self.u32(header, 4), bloomWords = Self.u32(header, 8)
        guard nbuckets > 0 else { return nil }
        let hash = name.reduce(UInt32(5381)) { $0 &* 33 &+ UInt32($1) }
        let buckets = table &+ 16 &+ UInt64(bloomWords) &* 8
        let bucketAt = buckets &+ UInt64(hash % nbuckets) &* 4
        var index = Self.u32(try readVirtual(bucketAt, 4, what: "a GNU hash bucket"), 0)
        guard index >= symoffset else { return nil }
        let chains = buckets &+ UInt64(nbuckets) &* 4
        for _ in 0..<Self.maxChain {
            let chain = Self.u32(try readVirtual(chains &+ UInt64(index - symoffset) &* 4, 4, what: "a GNU hash chain"), 0)
            if chain | 1 == hash | 1, let value = try match(index) { return value }
            if chain & 1 != 0 { return nil }
            guard index < UInt32.max else { break }
            index += 1
        }
        throw Malformed("a GNU hash chain longer than \(Self.maxChain) symbols")
    }

    private func sysvLookup(_ table: UInt64, _ name: [UInt8], _ match: (UInt32) throws(Malformed) -> UInt64?) throws(Malformed) -> UInt64? {
        let header = try readVirtual(table, 8, what: "the SysV hash table")
        let nbucket = Self.u32(header, 0), nchain = Self.u32(header, 4)
        guard nbucket > 0 else { return nil }
        let hash = name.reduce(UInt32(0)) { h, c in
            let x = h << 4 &+ UInt32(c), g = x & 0xf000_0000
            return (x ^ (g >> 24)) & ~g
        }
        var index = Self.u32(try readVirtual(table &+ 8 &+ UInt64(hash % nbucket) &* 4, 4, what: "a SysV hash bucket"), 0)
        var steps: UInt32 = 0
        while index != 0 {
            guard index < nchain, steps <= nchain, steps < UInt32(Self.maxChain) else {
                throw Malformed("a SysV hash chain leaves the table or is longer than \(Self.maxChain) symbols")
            }
            if let value = try match(index) { return value }
            index = Self.u32(try readVirtual(table &+ 8 &+ UInt64(nbucket) &* 4 &+ UInt64(index) &* 4, 4, what: "a SysV hash chain"), 0)
            steps += 1
        }
        return nil
    }

    // MARK: Data

    /// `count` bytes of initialised data at `vaddr`, as in the file (before relocation).
    func data(_ vaddr: UInt64, _ count: Int, what: String) throws(Malformed) -> [UInt8] {
        try readVirtual(vaddr, count, what: what)
    }

    /// The pointer stored at `vaddr` once the loader has relocated it (load base 0).
    func pointer(at vaddr: UInt64, what: String) throws(Malformed) -> Pointer {
        let inPlace = Self.u64(try readVirtual(vaddr, 8, what: what), 0)
        guard let r = try relocation(at: vaddr) else { return inPlace == 0 ? .null : .address(inPlace) }
        switch r.type {
        case 8: // R_X86_64_RELATIVE: base + addend
            return .address(r.addend ?? inPlace)
        case 1, 6: // R_X86_64_64 / GLOB_DAT: symbol + addend
            guard let symtab = dynamic[6] else { throw Malformed("\(what) is relocated against a symbol, but there is no symbol table") }
            let (offset, o1) = UInt64(r.symbol).multipliedReportingOverflow(by: dynamic[11] ?? 24)
            let (addr, o2) = symtab.addingReportingOverflow(offset)
            guard !o1, !o2 else { throw Malformed("\(what) names dynamic symbol \(r.symbol), outside the table") }
            let sym = try readVirtual(addr, 24, what: "dynamic symbol \(r.symbol)")
            guard Self.u16(sym, 6) != 0 else { return .external }
            return .address(Self.u64(sym, 8) &+ (r.type == 1 ? (r.addend ?? inPlace) : 0))
        default:
            throw Malformed("\(what) has relocation type \(r.type), which a plugin descriptor never needs")
        }
    }

    /// The last relocation the loader applies at `vaddr` (RELA, REL or RELR), if any.
    private func relocation(at vaddr: UInt64) throws(Malformed) -> Relocation? {
        var found: Relocation?
        for (table, sizeTag, entTag, explicit) in [(Int64(7), Int64(8), Int64(9), true), (17, 18, 19, false)] {
            guard let start = dynamic[table], let total = dynamic[sizeTag] else { continue }
            let entry = dynamic[entTag] ?? (explicit ? 24 : 16)
            guard entry == (explicit ? 24 : 16), total <= UInt64(Self.maxTable) else {
                throw Malformed("a relocation table of \(total) bytes in entries of \(entry) bytes")
            }
            let bytes = try readVirtual(start, Int(total), what: "the relocation table")
            for at in stride(from: 0, to: bytes.count - Int(entry) + 1, by: Int(entry)) where Self.u64(bytes, at) == vaddr {
                let info = Self.u64(bytes, at + 8)
                found = Relocation(type: UInt32(truncatingIfNeeded: info), symbol: UInt32(info >> 32),
                                   addend: explicit ? Self.u64(bytes, at + 16) : nil)
            }
        }
        if let start = dynamic[36], let total = dynamic[35] { // DT_RELR, DT_RELRSZ
            guard total <= UInt64(Self.maxTable), total % 8 == 0 else { throw Malformed("a RELR table of \(total) bytes") }
            let words = try readVirtual(start, Int(total), what: "the RELR table")
            var next: UInt64 = 0
            for at in stride(from: 0, to: words.count, by: 8) {
                let word = Self.u64(words, at)
                if word & 1 == 0 {
                    if word == vaddr { found = Relocation(type: 8, symbol: 0, addend: nil) }
                    next = word &+ 8
                } else {
                    for bit in 1..<64 where word >> UInt64(bit) & 1 != 0 && next &+ UInt64(bit - 1) * 8 == vaddr {
                        found = Relocation(type: 8, symbol: 0, addend: nil)
                    }
                    next = next &+ 63 * 8
                }
            }
        }
        return found
    }

    /// The NUL-terminated string at `vaddr` (at most `maxString` bytes).
    func string(at vaddr: UInt64, what: String) throws(Malformed) -> String {
        for s in segments where vaddr >= s.vaddr && vaddr - s.vaddr < s.fileSize {
            let available = Int(min(s.fileSize - (vaddr - s.vaddr), UInt64(Self.maxString + 1)))
            let bytes = try read(s.offset + (vaddr - s.vaddr), available)
            guard let end = bytes.firstIndex(of: 0) else {
                throw Malformed("\(what) at 0x\(String(vaddr, radix: 16)) is not NUL-terminated within \(Self.maxString) bytes")
            }
            return String(decoding: bytes[..<end], as: UTF8.self)
        }
        throw Malformed("\(what) points to 0x\(String(vaddr, radix: 16)), outside the file's loadable data")
    }
}
