@testable import Launcher
import Testing

/// The ATA disk's block commands (`ATADisk`): SET MULTIPLE MODE, READ and WRITE MULTIPLE
/// (and their LBA48 forms) in blocks, READ NATIVE MAX ADDRESS; the guest on real KVM is
/// `ATAGuestTests.multiple`.
@Suite("the ATA disk's READ/WRITE MULTIPLE and READ NATIVE MAX ADDRESS")
struct ATAMultipleTests {
    typealias T = ATADiskTests

    /// IDENTIFY's word `i`.
    static func identifyWord(_ d: ATADisk, _ i: Int) -> UInt16 {
        T.out(d, 0x1f7, 0xec)
        let data = T.sector(d)
        return UInt16(data[2 * i]) | UInt16(data[2 * i + 1]) << 8
    }

    static func setMultiple(_ d: ATADisk, _ n: UInt8) -> [UInt8] {
        T.out(d, 0x1f2, n)
        T.out(d, 0x1f7, 0xc6)
        return [T.inb(d, 0x1f7), T.inb(d, 0x1f1)]
    }

    @Test("IDENTIFY offers blocks of 16 (word 47) and says the size set (word 59, 16 after reset); SET MULTIPLE MODE takes 0 and powers of two up to 16, aborts anything else; SRST sets 16 again")
    func setMultiple() {
        let (d, _, _) = T.disk()
        T.out(d, 0x1f6, 0xa0)
        #expect(Self.identifyWord(d, 47) == 0x8010)
        #expect(Self.identifyWord(d, 59) == 0x110)
        #expect(Self.setMultiple(d, 4) == [0x50, 0x00])
        #expect(Self.identifyWord(d, 59) == 0x104)
        for bad: UInt8 in [3, 6, 0x20, 0x80, 0xff] {
            #expect(Self.setMultiple(d, bad) == [0x41, 0x04], "\(bad)")
        }
        #expect(Self.identifyWord(d, 59) == 0x104, "a refused size leaves the one set")
        #expect(Self.setMultiple(d, 0) == [0x50, 0x00])
        #expect(Self.identifyWord(d, 59) == 0, "no size set")
        T.lba28(d, 0xc4, lba: 1, count: 1)
        #expect([T.inb(d, 0x1f7), T.inb(d, 0x1f1)] == [0x41, 0x04], "READ MULTIPLE with no size set")
        T.lba28(d, 0xc5, lba: 1, count: 1)
        #expect([T.inb(d, 0x1f7), T.inb(d, 0x1f1)] == [0x41, 0x04], "WRITE MULTIPLE with no size set")
        T.out(d, 0x3f6, 0x04)
        T.out(d, 0x3f6, 0x00)
        #expect(Self.identifyWord(d, 59) == 0x110)
    }

    @Test("READ MULTIPLE of 6 in blocks of 4: an interrupt and DRQ for each block, the task file after each at the next sector; a rep insw of a whole block; READ MULTIPLE EXT")
    func readMultiple() {
        let (d, _, levels) = T.disk()
        _ = Self.setMultiple(d, 4)
        _ = T.inb(d, 0x1f7)
        let before = levels.all.count
        T.lba28(d, 0xc4, lba: 3, count: 6)
        #expect(Array(levels.all.dropFirst(before)) == [true])
        #expect(T.inb(d, 0x1f7) == 0x58)
        #expect([T.inb(d, 0x1f2), T.inb(d, 0x1f3)] == [2, 7], "after the first block: 2 left, at sector 7")
        let first = (0..<4).map { _ in T.sector(d) }
        #expect(first.map { $0.first } == [3, 4, 5, 6])
        #expect(T.inb(d, 0x1f7) == 0x58, "DRQ for the second block")
        #expect([T.inb(d, 0x1f2), T.inb(d, 0x1f3)] == [0, 9])
        #expect(T.sector(d).first == 7)
        #expect(d.read(0x3f6, size: 1) & 0xff == 0x58, "the second block is 2 sectors")
        #expect(T.sector(d).first == 8)
        #expect(T.inb(d, 0x1f7) == 0x50)
        #expect(Array(levels.all.dropFirst(before)) == [true, false, true, false])

        // LBA48 (0x29): 3 sectors from 10 in blocks of 2.
        _ = Self.setMultiple(d, 2)
        T.lba48(d, 0x29, lba: 10, count: 3)
        #expect((0..<3).map { _ in T.sector(d).first } == [10, 11, 12])
        #expect(T.inb(d, 0x1f7) == 0x50)
        // A block past the end is refused before any moves, as a single-sector read is.
        T.lba28(d, 0xc4, lba: 15, count: 2)
        #expect([T.inb(d, 0x1f7), T.inb(d, 0x1f1)] == [0x41, 0x04])
    }

    @Test("WRITE MULTIPLE of 5 in blocks of 4: DRQ without an interrupt, each block written when its last byte is in, then an interrupt; WRITE MULTIPLE EXT; a read-only disk aborts")
    func writeMultiple() {
        let (d, store, levels) = T.disk()
        T.out(d, 0x3f6, 0)
        _ = Self.setMultiple(d, 4)
        _ = T.inb(d, 0x1f7)
        let before = levels.all.count
        T.lba28(d, 0xc5, lba: 8, count: 5)
        #expect(d.read(0x3f6, size: 1) & 0xff == 0x58)
        #expect(levels.all.count == before)
        for i in 0..<(3 * 256 + 255) { d.write(0x1f0, size: 2, UInt32(i & 0xff) * 0x0101) }
        #expect(store.bytes[8 * 512] == 8, "nothing written before the block's last byte")
        d.write(0x1f0, size: 2, 0x4242)
        #expect(store.bytes[8 * 512..<12 * 512].last == 0x42)
        #expect(store.bytes[9 * 512] == 0, "sector 9 holds the guest's bytes")
        #expect(Array(levels.all.dropFirst(before)) == [true])
        #expect([T.inb(d, 0x1f7), T.inb(d, 0x1f2), T.inb(d, 0x1f3)] == [0x58, 1, 12], "DRQ for the last sector, at 12")
        for _ in 0..<128 { d.write(0x1f0, size: 4, 0x7777_7777) }
        #expect(store.bytes[12 * 512..<13 * 512].allSatisfy { $0 == 0x77 })
        #expect(store.bytes[13 * 512] == 13, "sector 13 untouched")
        #expect(T.inb(d, 0x1f7) == 0x50)

        T.lba48(d, 0x39, lba: 14, count: 2) // 2 sectors from 14 in one block
        for _ in 0..<512 { d.write(0x1f0, size: 2, 0x3939) }
        #expect(store.bytes[14 * 512..<16 * 512].allSatisfy { $0 == 0x39 })
        #expect(T.inb(d, 0x1f7) == 0x50)

        let (ro, roStore, _) = T.disk(readOnly: true)
        T.lba28(ro, 0xc5, lba: 1, count: 2)
        for _ in 0..<512 { ro.write(0x1f0, size: 2, 0) }
        #expect([T.inb(ro, 0x1f7), T.inb(ro, 0x1f1)] == [0x41, 0x04])
        #expect(roStore.bytes[512] == 1 && roStore.bytes[1024] == 2)
    }

    @Test("READ NATIVE MAX ADDRESS: the last sector in the task file, LBA28, LBA48 (with its HOB bytes) and CHS")
    func nativeMax() {
        let (d, _, _) = T.disk(sectors: 301)
        T.out(d, 0x1f6, 0xe0)
        T.out(d, 0x1f7, 0xf8)
        #expect([T.inb(d, 0x1f7), T.inb(d, 0x1f3), T.inb(d, 0x1f4), T.inb(d, 0x1f5), T.inb(d, 0x1f6)] == [0x50, 0x2c, 0x01, 0x00, 0xe0])
        T.out(d, 0x1f6, 0x40)
        for port: UInt16 in 0x1f3...0x1f5 { T.out(d, port, 0xff); T.out(d, port, 0xff) } // HOB bytes 0xff
        T.out(d, 0x1f7, 0x27)
        #expect([T.inb(d, 0x1f3), T.inb(d, 0x1f4), T.inb(d, 0x1f5)] == [0x2c, 0x01, 0x00])
        T.out(d, 0x3f6, 0x80)
        #expect([T.inb(d, 0x1f3), T.inb(d, 0x1f4), T.inb(d, 0x1f5)] == [0, 0, 0])
        T.out(d, 0x3f6, 0x00)
        T.out(d, 0x1f6, 0xa0) // CHS: 300 = 0 * 1008 + 4 * 63 + 48 → cylinder 0, head 4, sector 49
        T.out(d, 0x1f7, 0xf8)
        #expect([T.inb(d, 0x1f3), T.inb(d, 0x1f4), T.inb(d, 0x1f5), T.inb(d, 0x1f6)] == [49, 0, 0, 0xa4])
    }

    @Test("a block half-read survives the snapshot blob with its size: restored, the rest of it, then the next block")
    func savedBlock() throws {
        let (d, _, _) = T.disk()
        _ = Self.setMultiple(d, 8)
        T.lba28(d, 0xc4, lba: 2, count: 11)
        for _ in 0..<(256 * 3 + 10) { _ = d.read(0x1f0, size: 2) }
        let saved = d.saved
        #expect(saved.state.blockSectors == 8 && saved.state.remaining == 3 && saved.state.position == 1556)
        let line = ATAState.blobLine(saved)
        #expect(line.split(separator: " ")[23...24] == ["0x8", "0x8"], "MULTIPLE and BLOCK-SIZE")
        let blob = BuiltInDeviceState(ata: saved)
        let back = try BuiltInDeviceState.decode(blob.encoded(), version: 1, where: "snap")
        #expect(back == blob)
        let (other, _, _) = T.disk()
        #expect(other.refusal(saved) == nil)
        other.restore(saved)
        #expect((0..<246).allSatisfy { _ in other.read(0x1f0, size: 2) == 0xa5a5 }, "the rest of sector 5")
        #expect((0..<4).map { _ in T.sector(other).first } == [6, 7, 8, 9])
        #expect(T.inb(other, 0x1f7) == 0x58, "the last block, 3 sectors")
        #expect((0..<3).map { _ in T.sector(other).first } == [10, 11, 12])
        #expect(T.inb(other, 0x1f7) == 0x50)
        #expect(Self.identifyWord(other, 59) == 0x108, "the size set came back too")
        // A disk too small for the block in flight is refused.
        var past = saved
        past.state.lba = 12
        #expect(T.disk(sectors: 16).0.refusal(past) == "the disk's transfer at sector 12 with 10 more lies past its 16 sectors")
    }
}
