@testable import Launcher
import Testing

/// The disk's CHS geometry as QEMU's `hd_geometry_guess` (hw/block/hd-geometry.c) guesses
/// it for a raw image: from the MBR's first usable partition, else from the size. Before,
/// every disk reported the size guess (16 heads, 63 sectors), so a guest addressing a
/// partitioned image by CHS, as its partition table describes it, read other sectors
/// than under QEMU.
@Suite("the ATA disk's geometry as QEMU's hd_geometry_guess")
struct ATAGeometryTests {
    /// Sector 0 with the MBR signature and partition entries: (end head, end sector byte,
    /// sector count), from the first entry on.
    static func mbr(_ entries: [(endHead: UInt8, endSector: UInt8, count: UInt32)], signed: Bool = true) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 512)
        for (i, e) in entries.enumerated() {
            let at = 0x1be + 16 * i
            bytes[at + 5] = e.endHead
            bytes[at + 6] = e.endSector
            for b in 0..<4 { bytes[at + 12 + b] = UInt8(truncatingIfNeeded: e.count >> (8 * b)) }
        }
        if signed { (bytes[510], bytes[511]) = (0x55, 0xaa) }
        return bytes
    }

    static func mbr(endHead: UInt8, endSector: UInt8) -> [UInt8] { mbr([(endHead, endSector, 2048)]) }

    static func chs(_ g: ATAGeometry) -> [UInt64] { [g.cylinders, g.heads, g.sectorsPerTrack, UInt64(g.translation.rawValue)] }

    @Test("a partition ending at head 7, sector 32 on 8 MiB: 64 cylinders, 8 heads, 32 sectors, no translation; the sector byte's cylinder bits (6-7) are not the sector's")
    func fromPartition() {
        #expect(Self.chs(ATAGeometry(mbr: Self.mbr(endHead: 7, endSector: 32), sectors: 16384)) == [64, 8, 32, 0])
        #expect(Self.chs(ATAGeometry(mbr: Self.mbr(endHead: 15, endSector: 0xc0 | 63), sectors: 1100 * 16 * 63)) == [1100, 16, 63, 0])
    }

    @Test("no 0x55 0xaa at 510, or no entry with sectors, an end head and an end sector: the size guess (16 heads, 63 sectors)")
    func sizeGuess() {
        let size: UInt64 = 1100 * 16 * 63
        #expect(Self.chs(ATAGeometry(mbr: Self.mbr([(7, 32, 2048)], signed: false), sectors: size)) == [1100, 16, 63, 1])
        #expect(Self.chs(ATAGeometry(mbr: Self.mbr([(7, 32, 0), (0, 32, 5), (7, 0xc0, 5)]), sectors: size)) == [1100, 16, 63, 1])
        #expect(Self.chs(ATAGeometry(mbr: nil, sectors: 2000 * 1008)) == [2000, 16, 63, 1])
        #expect(Self.chs(ATAGeometry(mbr: nil, sectors: 100)) == [2, 16, 63, 0])
    }

    @Test("the first entry that fits wins: entries skipped for no sectors, or for 0 or more than 16383 cylinders of their geometry")
    func firstUsable() {
        // On 40000 sectors 2 heads x 1 sector make 20000 cylinders, too many; 4 x 10 make 1000.
        #expect(Self.chs(ATAGeometry(mbr: Self.mbr([(3, 8, 0), (1, 1, 9), (3, 10, 9)]), sectors: 40000)) == [1000, 4, 10, 0])
        #expect(Self.chs(ATAGeometry(mbr: Self.mbr([(1, 1, 9)]), sectors: 40000)) == [39, 16, 63, 0])
        // On 100 sectors 2 x 63 make no cylinder; 2 x 5 make 10.
        #expect(Self.chs(ATAGeometry(mbr: Self.mbr([(1, 63, 9), (1, 5, 9)]), sectors: 100)) == [10, 2, 5, 0])
        #expect(Self.chs(ATAGeometry(mbr: Self.mbr([(1, 63, 9)]), sectors: 100)) == [2, 16, 63, 0])
    }

    @Test("more than 16 heads (a BIOS's translation): the size guess, translated LARGE (2) up to 8192 cylinders, LBA (1) past them")
    func translated() {
        #expect(Self.chs(ATAGeometry(mbr: Self.mbr(endHead: 254, endSector: 63), sectors: 1100 * 16 * 63)) == [1100, 16, 63, 2])
        #expect(Self.chs(ATAGeometry(mbr: Self.mbr(endHead: 254, endSector: 63), sectors: 8192 * 16 * 63)) == [8192, 16, 63, 2])
        #expect(Self.chs(ATAGeometry(mbr: Self.mbr(endHead: 254, endSector: 63), sectors: 8193 * 16 * 63)) == [8193, 16, 63, 1])
        #expect(Self.chs(ATAGeometry(mbr: Self.mbr(endHead: 16, endSector: 63), sectors: 1100 * 16 * 63)) == [1100, 16, 63, 2])
    }

    @Test("a partitioned disk's IDENTIFY (words 1, 3, 6, 54-58) and CHS addressing follow the partition's geometry")
    func identifyAndCHS() {
        // 8 heads x 32 sectors x 4 cylinders; each sector after the first begins with its number.
        var bytes = Self.mbr(endHead: 7, endSector: 32)
        for n in 1..<1024 { bytes += [UInt8(truncatingIfNeeded: n), UInt8(truncatingIfNeeded: n >> 8)] + [UInt8](repeating: 0, count: 510) }
        let disk = ATADisk(MemorySectors(bytes))
        ATADiskTests.out(disk, 0x1f7, 0xec)
        let data = ATADiskTests.sector(disk)
        func word(_ i: Int) -> UInt16 { UInt16(data[2 * i]) | UInt16(data[2 * i + 1]) << 8 }
        #expect([1, 3, 6, 54, 55, 56, 57, 58].map(word) == [4, 8, 32, 4, 8, 32, 1024, 0])
        // Cylinder 1, head 2, sector 3: LBA (1 x 8 + 2) x 32 + 2 = 322.
        ATADiskTests.out(disk, 0x1f6, 0xa2)
        ATADiskTests.out(disk, 0x1f2, 1); ATADiskTests.out(disk, 0x1f3, 3); ATADiskTests.out(disk, 0x1f4, 1); ATADiskTests.out(disk, 0x1f5, 0)
        ATADiskTests.out(disk, 0x1f7, 0x20)
        #expect(ATADiskTests.sector(disk).prefix(2) == [0x42, 0x01])
        // Head 8 lies past the geometry: aborted.
        ATADiskTests.out(disk, 0x1f6, 0xa8)
        ATADiskTests.out(disk, 0x1f2, 1)
        ATADiskTests.out(disk, 0x1f7, 0x20)
        #expect(ATADiskTests.inb(disk, 0x1f7) == 0x41)
    }
}
