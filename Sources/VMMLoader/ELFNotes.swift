/// The ELF notes a loader acts on: Xen's PVH entry (`XEN_ELFNOTE_PHYS32_ENTRY`), which
/// QEMU's `-kernel` boots through the PVH protocol (`PVH.swift`).
enum ELFNotes {
    static let ptNote: UInt32 = 4
    static let xenPhys32Entry: UInt32 = 18
    static let xenName: [UInt8] = Array("Xen\0".utf8)

    /// The first PVH entry note's address in the PT_NOTE segments of the program header
    /// table at `phoff` (already checked to lie in `bytes`), or nil. A note that runs past
    /// its segment, a segment past the file, or an entry that is not a 32-bit address is
    /// an error: an image that means to be entered by PVH is never entered another way.
    static func pvhEntry(_ bytes: [UInt8], is64: Bool, phoff: Int, phentsize: Int, phnum: Int,
                         bad: (String) -> LoaderError) throws(LoaderError) -> UInt32? {
        let r = ByteReader(bytes)
        // Each note segment is read whole: many naming the same megabytes were read again
        // and again (1,000 segments over 1 MiB took 18 s; the headers allow 65,535).
        var scanned: UInt64 = 0
        for i in 0..<phnum {
            let at = phoff + i * phentsize
            guard r.u32(at) == ptNote else { continue }
            let offset = is64 ? r.u64(at + 8) : UInt64(r.u32(at + 4))
            let size = is64 ? r.u64(at + 32) : UInt64(r.u32(at + 16))
            // Notes are 4-byte aligned, or 8 in a segment that says so (gABI ELF64).
            let align: UInt64 = (is64 ? r.u64(at + 48) : UInt64(r.u32(at + 28))) == 8 ? 8 : 4
            let (end, overflow) = offset.addingReportingOverflow(size)
            guard !overflow else { throw bad("note segment \(i): \(size) bytes at file offset \(hex(offset)) run past 2^64") }
            guard end <= UInt64(bytes.count) else {
                throw bad("truncated: note segment \(i) needs file bytes up to \(hex(end)) but the file has \(hex(bytes.count))")
            }
            scanned += size
            guard scanned <= UInt64(bytes.count) else {
                throw bad("the note segments up to segment \(i) cover \(scanned) bytes of a file of \(bytes.count): the same bytes named again and again")
            }
            var note = offset
            // Every quantity below is at most a 32-bit field plus padding, added to an
            // offset within the file: no sum can wrap a UInt64.
            while note <= end, end - note >= 12 { // the last note's padding may end past `end`
                let nameSize = UInt64(r.u32(Int(note))), descSize = UInt64(r.u32(Int(note) + 4))
                let type = r.u32(Int(note) + 8)
                let name = note + 12
                let desc = name + padded(nameSize, align)
                guard desc <= end, desc + descSize <= end else {
                    throw bad("note at file offset \(hex(note)) (segment \(i)) runs past its segment's end \(hex(end))")
                }
                if type == xenPhys32Entry, nameSize == 4, Array(bytes[Int(name)..<Int(name) + 4]) == xenName {
                    let entry: UInt64 = switch descSize {
                    case 4: UInt64(r.u32(Int(desc)))
                    case 8: r.u64(Int(desc))
                    default: throw bad("the PVH entry note (Xen, type 18) holds \(descSize) bytes, not 4 or 8")
                    }
                    guard entry <= UInt64(UInt32.max) else {
                        throw bad("the PVH entry \(hex(entry)) is above 4 GiB (PVH enters in 32-bit mode)")
                    }
                    return UInt32(entry)
                }
                note = desc + padded(descSize, align)
            }
        }
        return nil
    }

    private static func padded(_ size: UInt64, _ align: UInt64) -> UInt64 { (size + align - 1) & ~(align - 1) }
}
