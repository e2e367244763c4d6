@testable import Launcher
import Synchronization
import Testing

/// The IDE disk (`ATADisk`) as a guest's driver sees it through its ports, on sectors in
/// memory; the guest on real KVM is `ATAGuestTests`.
@Suite("the ATA disk's registers and commands")
struct ATADiskTests {
    /// A disk of `sectors` sectors, each beginning with its number as a byte, and IRQ 14's
    /// levels as driven.
    static func disk(sectors: Int = 16, readOnly: Bool = false) -> (ATADisk, MemorySectors, Levels) {
        let bytes = (0..<sectors).flatMap { n in [UInt8(truncatingIfNeeded: n)] + [UInt8](repeating: 0xa5, count: 511) }
        let store = MemorySectors(bytes, readOnly: readOnly)
        let disk = ATADisk(store)
        let levels = Levels()
        disk.connectInterrupt { level in levels.m.withLock { $0.append(level) } }
        return (disk, store, levels)
    }

    final class Levels: Sendable {
        let m = Mutex<[Bool]>([])
        var all: [Bool] { m.withLock { $0 } }
    }

    static func out(_ d: ATADisk, _ port: UInt16, _ v: UInt8) { d.write(port, size: 1, UInt32(v)) }
    static func inb(_ d: ATADisk, _ port: UInt16) -> UInt8 { UInt8(truncatingIfNeeded: d.read(port, size: 1)) }

    /// LBA28 command `c` for `count` sectors at `lba`, as OSDev's driver writes it.
    static func lba28(_ d: ATADisk, _ c: UInt8, lba: UInt32, count: UInt8) {
        out(d, 0x1f6, 0xe0 | UInt8(lba >> 24 & 0xf))
        out(d, 0x1f2, count)
        out(d, 0x1f3, UInt8(lba & 0xff)); out(d, 0x1f4, UInt8(lba >> 8 & 0xff)); out(d, 0x1f5, UInt8(lba >> 16 & 0xff))
        out(d, 0x1f7, c)
    }

    /// LBA48 command `c` for `count` sectors at `lba` (below 2^32): each register written
    /// twice, its high-order byte first.
    static func lba48(_ d: ATADisk, _ c: UInt8?, lba: UInt32, count: UInt16) {
        out(d, 0x1f6, 0x40)
        for (port, high, low) in [(UInt16(0x1f2), UInt8(count >> 8), UInt8(count & 0xff)), (0x1f3, UInt8(lba >> 24), UInt8(lba & 0xff)),
                                  (0x1f4, 0, UInt8(lba >> 8 & 0xff)), (0x1f5, 0, UInt8(lba >> 16 & 0xff))] {
            out(d, port, high); out(d, port, low)
        }
        if let c { out(d, 0x1f7, c) }
    }

    /// 512 bytes through the data port, 2 a read.
    static func sector(_ d: ATADisk) -> [UInt8] {
        (0..<256).flatMap { _ in let w = d.read(0x1f0, size: 2); return [UInt8(w & 0xff), UInt8(w >> 8 & 0xff)] }
    }

    @Test("after power-on: status 0x50, the ATA signature, error 0 (QEMU's ide_reset); the absent slave reads 0 for error and status, its own task file (no device's signature, then what was written) and ignores commands")
    func signatureAndSlave() {
        let (d, _, levels) = Self.disk()
        #expect(Self.inb(d, 0x1f7) == 0x50)
        #expect((0x1f1...0x1f6).map { Self.inb(d, UInt16($0)) } == [0x00, 0x01, 0x01, 0x00, 0x00, 0xa0])
        Self.out(d, 0x1f6, 0xb0)
        #expect((0x1f1...0x1f7).map { Self.inb(d, UInt16($0)) } == [0, 0x01, 0x01, 0xff, 0xff, 0xb0, 0])
        #expect(d.read(0x3f6, size: 1) == 0)
        // Linux's ata_devchk: the pattern written with the slave selected reads back.
        Self.out(d, 0x1f2, 0x55); Self.out(d, 0x1f3, 0xaa)
        #expect([Self.inb(d, 0x1f2), Self.inb(d, 0x1f3)] == [0x55, 0xaa])
        Self.out(d, 0x1f7, 0xec)
        Self.out(d, 0x1f6, 0xa0)
        #expect(Self.inb(d, 0x1f7) == 0x50, "the slave's IDENTIFY reached the master")
        #expect(levels.all.isEmpty)
    }

    @Test("IDENTIFY: DRQ and IRQ 14, QEMU's layout with this disk's model, CHS geometry, LBA28 and LBA48 sizes; the status read lowers the line")
    func identify() {
        let (d, _, levels) = Self.disk(sectors: 20000)
        Self.out(d, 0x1f6, 0xa0)
        Self.out(d, 0x1f7, 0xec)
        #expect(levels.all == [true])
        #expect(d.read(0x3f6, size: 1) & 0xff == 0x58, "the alternate status leaves the line up")
        #expect(levels.all == [true])
        #expect(Self.inb(d, 0x1f7) == 0x58)
        #expect(levels.all == [true, false])
        let data = Self.sector(d)
        func word(_ i: Int) -> UInt16 { UInt16(data[2 * i]) | UInt16(data[2 * i + 1]) << 8 }
        let model = (27..<47).flatMap { [UInt8(word($0) >> 8), UInt8(word($0) & 0xff)] }
        #expect(String(decoding: model, as: UTF8.self) == "VMMKit HARDDISK" + String(repeating: " ", count: 25))
        #expect([word(0), word(1), word(3), word(6)] == [0x40, 19, 16, 63]) // 20000 / (16 * 63) cylinders
        #expect(UInt32(word(60)) | UInt32(word(61)) << 16 == 20000)
        #expect(UInt64(word(100)) | UInt64(word(101)) << 16 | UInt64(word(102)) << 32 == 20000)
        #expect(word(49) & (1 << 9) != 0 && word(49) & (1 << 8) == 0, "LBA, no DMA")
        #expect(word(83) & (1 << 10) != 0, "LBA48")
        #expect(Self.inb(d, 0x1f7) == 0x50, "DRQ ends with the 512th byte")
        #expect(d.read(0x1f0, size: 2) == 0, "no data without DRQ")
    }

    @Test("READ SECTORS of 2: an interrupt and DRQ for each sector, the task file left at the next sector with count 0, no interrupt at the end")
    func readTwo() {
        let (d, _, levels) = Self.disk()
        Self.lba28(d, 0x20, lba: 3, count: 2)
        #expect(Self.inb(d, 0x1f7) == 0x58)
        #expect(Self.sector(d).prefix(2) == [3, 0xa5])
        #expect(Self.inb(d, 0x1f7) == 0x58)
        #expect(Self.sector(d).prefix(2) == [4, 0xa5])
        #expect(Self.inb(d, 0x1f7) == 0x50)
        #expect([Self.inb(d, 0x1f2), Self.inb(d, 0x1f3), Self.inb(d, 0x1f4), Self.inb(d, 0x1f5)] == [0, 5, 0, 0])
        #expect(levels.all == [true, false, true, false])
    }

    @Test("a sector count of 0 is 256 sectors; a read past the last sector, or reaching past it, is aborted (0x41, error 0x04) with an interrupt")
    func countsAndRange() {
        let (d, _, _) = Self.disk(sectors: 300)
        Self.lba28(d, 0x20, lba: 44, count: 0)
        for n in 44..<300 {
            #expect(Self.sector(d).first == UInt8(truncatingIfNeeded: n))
        }
        #expect(Self.inb(d, 0x1f7) == 0x50)
        Self.lba28(d, 0x20, lba: 45, count: 0) // 45 + 256 > 300
        #expect([Self.inb(d, 0x1f7), Self.inb(d, 0x1f1)] == [0x41, 0x04])
        Self.lba28(d, 0x20, lba: 0x0fff_ffff, count: 1)
        #expect([Self.inb(d, 0x1f7), Self.inb(d, 0x1f1)] == [0x41, 0x04])
        Self.out(d, 0x1f7, 0x00) // NOP, and any command it does not know
        #expect([Self.inb(d, 0x1f7), Self.inb(d, 0x1f1)] == [0x41, 0x04])
        Self.out(d, 0x1f7, 0xc8) // READ DMA: no DMA here
        #expect([Self.inb(d, 0x1f7), Self.inb(d, 0x1f1)] == [0x41, 0x04])
    }

    @Test("LBA48: each register written twice, the first byte read back through HOB; READ SECTORS EXT reaches past 2^28 and updates the HOB bytes")
    func lba48() {
        let (d, _, _) = Self.disk(sectors: 8)
        Self.lba48(d, nil, lba: 6, count: 1)
        Self.out(d, 0x3f6, 0x82) // HOB, no interrupts
        #expect(Self.inb(d, 0x1f3) == 0)
        Self.out(d, 0x3f6, 0x02)
        #expect(Self.inb(d, 0x1f3) == 6)
        Self.out(d, 0x1f7, 0x24)
        #expect(Self.sector(d).first == 6)
        // Sector 2^24 + 6 does not exist: aborted, the HOB byte having made it so.
        Self.lba48(d, 0x24, lba: 1 << 24 | 6, count: 1)
        #expect([Self.inb(d, 0x1f7), Self.inb(d, 0x1f1)] == [0x41, 0x04])
    }

    @Test("CHS: cylinder, head and sector through the geometry; sector 0 is no sector")
    func chs() {
        let (d, _, _) = Self.disk(sectors: 16 * 63 * 2)
        Self.out(d, 0x1f6, 0xa1) // head 1
        Self.out(d, 0x1f2, 1); Self.out(d, 0x1f3, 5); Self.out(d, 0x1f4, 1); Self.out(d, 0x1f5, 0)
        Self.out(d, 0x1f7, 0x20)
        #expect(Self.sector(d).first == UInt8(truncatingIfNeeded: (1 * 16 + 1) * 63 + 4))
        Self.out(d, 0x1f3, 0)
        Self.out(d, 0x1f2, 1)
        Self.out(d, 0x1f7, 0x20)
        #expect(Self.inb(d, 0x1f7) == 0x41)
    }

    @Test("WRITE SECTORS: DRQ without an interrupt, the sector written when its 512th byte is in, then an interrupt; 32-bit accesses too; a read-only disk aborts")
    func write() {
        let (d, store, levels) = Self.disk()
        Self.out(d, 0x3f6, 0)
        Self.lba28(d, 0x30, lba: 2, count: 2)
        #expect(d.read(0x3f6, size: 1) & 0xff == 0x58)
        #expect(levels.all.isEmpty)
        for i in 0..<128 { d.write(0x1f0, size: 4, UInt32(i) * 0x0101_0101) }
        #expect(levels.all == [true])
        #expect(Self.inb(d, 0x1f7) == 0x58, "DRQ for the second sector")
        for _ in 0..<256 { d.write(0x1f0, size: 2, 0x7777) }
        #expect(Self.inb(d, 0x1f7) == 0x50)
        #expect(Array(store.bytes[1024..<1032]) == [0, 0, 0, 0, 1, 1, 1, 1])
        #expect(store.bytes[1536..<2048].allSatisfy { $0 == 0x77 })
        #expect(store.bytes[2048] == 4, "sector 4 untouched")
        Self.out(d, 0x1f7, 0xe7)
        #expect(Self.inb(d, 0x1f7) == 0x50)

        let (ro, roStore, _) = Self.disk(readOnly: true)
        Self.lba28(ro, 0x30, lba: 1, count: 1)
        for _ in 0..<256 { ro.write(0x1f0, size: 2, 0) }
        #expect([Self.inb(ro, 0x1f7), Self.inb(ro, 0x1f1)] == [0x41, 0x04])
        #expect(roStore.bytes[512] == 1)
    }

    @Test("a command is ignored while DRQ is set; a data access that does not fit the sector's rest moves nothing; SRST resets to the signature")
    func ignoredAndReset() {
        let (d, _, levels) = Self.disk()
        Self.out(d, 0x3f6, 0x02)
        Self.lba28(d, 0x20, lba: 7, count: 1)
        Self.out(d, 0x1f7, 0xec)
        for _ in 0..<127 { _ = d.read(0x1f0, size: 4) }
        #expect(d.read(0x1f0, size: 2) == 0xa5a5)
        #expect(d.read(0x1f0, size: 4) == 0, "2 bytes left, 4 asked")
        #expect(d.read(0x1f0, size: 2) == 0xa5a5)
        #expect(Self.inb(d, 0x1f7) == 0x50)
        Self.lba28(d, 0x20, lba: 7, count: 1)
        Self.out(d, 0x3f6, 0x06) // SRST: done at once, as QEMU's
        #expect(Self.inb(d, 0x1f7) == 0x50)
        Self.out(d, 0x3f6, 0x02)
        #expect(Self.inb(d, 0x1f7) == 0x50)
        #expect((0x1f1...0x1f6).map { Self.inb(d, UInt16($0)) } == [0x01, 0x01, 0x01, 0x00, 0x00, 0xa0])
        #expect(d.read(0x1f0, size: 2) == 0)
        #expect(levels.all.isEmpty, "nIEN kept every interrupt off")
    }

    @Test("the disk's state in a snapshot reads back as saved, mid-transfer; a disk of another size or a transfer past its end is refused")
    func savedState() throws {
        let (d, _, _) = Self.disk()
        Self.lba28(d, 0x20, lba: 9, count: 3)
        for _ in 0..<64 { _ = d.read(0x1f0, size: 2) }
        let saved = d.saved
        #expect(saved.state.transfer == .read && saved.state.position == 128 && saved.state.remaining == 2 && saved.state.lba == 9)
        let blob = BuiltInDeviceState(ata: saved)
        let back = try BuiltInDeviceState.decode(blob.encoded(), version: 1, where: "snap")
        #expect(back == blob)
        let (other, _, _) = Self.disk()
        #expect(other.refusal(saved) == nil)
        other.restore(saved)
        // The rest of sector 9 (192 words), then sector 10 with its own interrupt and DRQ.
        #expect((0..<192).allSatisfy { _ in other.read(0x1f0, size: 2) == 0xa5a5 })
        #expect(Self.sector(other).first == 10)
        let (small, _, _) = Self.disk(sectors: 8)
        #expect(small.refusal(saved) == "the snapshot's disk had 16 sectors, the --hda image has 8")
        // Ended transfers leave nothing in flight: a whole read, a reset mid-sector, an abort.
        let (e, _, _) = Self.disk()
        let steps: [() -> Void] = [
            { Self.lba28(e, 0x20, lba: 1, count: 1); _ = Self.sector(e) },
            { Self.lba28(e, 0x20, lba: 1, count: 1); _ = e.read(0x1f0, size: 2); Self.out(e, 0x3f6, 0x04); Self.out(e, 0x3f6, 0x00) },
            { Self.lba28(e, 0x20, lba: 99, count: 1) },
        ]
        for (i, step) in steps.enumerated() {
            step()
            let state = e.saved
            #expect(state.state.transfer == .none && state.state.position == 0, "step \(i)")
            #expect(try BuiltInDeviceState.decode(BuiltInDeviceState(ata: state).encoded(), version: 1, where: "snap").ata == state)
        }
        var past = saved
        past.state.lba = 15
        #expect(small.refusal(.init(sectors: 8, state: past.state, geometry: ATAGeometry(sectors: 8))) == "the disk's transfer at sector 15 with 2 more lies past its 8 sectors")
    }

    /// MULTIPLE, BLOCK-SIZE and the slave's registers as after a reset, before the geometry.
    static let slaveWords: [Int: String] = [23: "0x10", 24: "0x1", 25: "0x1", 26: "0x1", 27: "0xff", 28: "0xff", 29: "0x0",
                                            30: "0x0", 31: "0x0", 32: "0x0", 33: "0xa0"]

    @Test("a partition table's geometry goes with the snapshot: a restore keeps it (IDENTIFY and CHS addressing) whatever the image's table says by then; a size-guessed one writes no words")
    func geometrySnapshot() throws {
        var bytes = ATAGeometryTests.mbr(endHead: 7, endSector: 32)
        for n in 1..<1024 { bytes += [UInt8(truncatingIfNeeded: n), UInt8(truncatingIfNeeded: n >> 8)] + [UInt8](repeating: 0, count: 510) }
        let store = MemorySectors(bytes)
        let disk = ATADisk(store)
        let saved = disk.saved
        let line = String(decoding: BuiltInDeviceState(ata: saved).encoded(), as: UTF8.self)
        #expect(line.contains(" 0xa0 0x4 0x8 0x20 0x0\n"), "\(line.suffix(60))")
        let back = try #require(try BuiltInDeviceState.decode(Array(line.utf8), version: 1, where: "snap").ata)
        #expect(back == saved)
        // The guest repartitions (the signature gone): a new disk guesses 16 x 63; the restored keeps 8 x 32.
        let mbr = [UInt8](repeating: 0, count: 512)
        _ = mbr.withUnsafeBytes { store.write(0, from: $0) }
        let restored = ATADisk(store)
        #expect(restored.geometry == ATAGeometry(sectors: 1024))
        restored.restore(back)
        Self.out(restored, 0x1f7, 0xec)
        let data = Self.sector(restored)
        #expect([1, 3, 6].map { UInt16(data[2 * $0]) | UInt16(data[2 * $0 + 1]) << 8 } == [4, 8, 32])
        Self.out(restored, 0x1f6, 0xa2)
        Self.out(restored, 0x1f2, 1); Self.out(restored, 0x1f3, 3); Self.out(restored, 0x1f4, 1); Self.out(restored, 0x1f5, 0)
        Self.out(restored, 0x1f7, 0x20)
        #expect(Self.sector(restored).prefix(2) == [0x42, 0x01], "cylinder 1, head 2, sector 3 of 8 x 32: sector 322")
        let kept = String(decoding: BuiltInDeviceState(ata: restored.saved).encoded(), as: UTF8.self)
        #expect(kept.contains(" 0x4 0x8 0x20 0x0\n"), "the restored disk's next snapshot keeps the geometry")
        // A size-guessed disk's line ends at the buffer (no MULTIPLE, slave or geometry words).
        let fresh = String(decoding: BuiltInDeviceState(ata: ATADisk(store).saved).encoded(), as: UTF8.self)
        #expect(fresh.split(separator: "\n").first { $0.hasPrefix("ata ") }?.split(separator: " ").count == ATAState.blobWords)
    }

    @Test("a damaged ata line is refused in one line naming the value")
    func hostileLine() {
        let ok = ["ata", "0x10", "0x58", "0x0", "0x0", "0x1", "0x2", "0x0", "0x0", "0x0", "0x1", "0x1", "0x0", "0x0", "0xe0", "0x2",
                  "2", "0x1", "0x1", "0x100", "0", "0", String(repeating: "a5", count: 512)]
        // Keys past the last word append words (23, 24: MULTIPLE and BLOCK-SIZE).
        func line(_ changes: [Int: String]) -> String {
            let words = (0..<max(ok.count, (changes.keys.max() ?? 0) + 1)).map { changes[$0] ?? ok[$0] }
            return "vmm-launcher-devices 1\n" + words.joined(separator: " ") + "\nend\n"
        }
        let twoSectors = String(repeating: "a5", count: 1024)
        #expect((try? BuiltInDeviceState.decode(Array(line([:]).utf8), version: 1, where: "snap"))?.ata?.state.position == 0x100)
        let cases: [([Int: String], String)] = [
            ([1: "0x0"], "ata sectors 0x0 (1 to 2^48)"),
            ([1: "0x1000000000001"], "ata sectors 0x1000000000001 (1 to 2^48)"),
            ([1: "+16"], "ata sectors '+16'"),
            ([2: "0x5a"], "ata status 0x5a (bits other than 0xd9)"),
            ([2: "0x50"], "ata status 0x50 with transfer 2 (DRQ is set exactly during one)"),
            ([2: "0x80"], "ata status 0x80 busy with control 0x2 (busy only while SRST, 0x04, is held)"),
            ([14: "0x0"], "ata select 0x0 (bits 5 and 7 always set)"),
            ([16: "4"], "ata transfer '4' (0 to 3)"),
            ([16: "+2"], "ata transfer '+2' (0 to 3)"),
            ([19: "0x200"], "ata position 0x200 (even, inside the buffer, 0 with no transfer)"),
            ([19: "0x101"], "ata position 0x101"),
            ([18: "0x10000"], "ata remaining 0x10000"),
            ([17: "0xf", 18: "0x1"], "ata lba 0xf with 1 more (past the disk's 16 sectors)"),
            ([17: "0xffffffffffffffff"], "ata lba 0xffffffffffffffff with 1 more"),
            ([20: "2"], "ata lba48 '2' (0 or 1)"),
            ([21: "yes"], "ata line 'yes' (0 or 1)"),
            ([22: "-"], "ata buffer '-' with a transfer in flight"),
            ([22: "a5"], "ata buffer of 2 characters (1024 hex digits a sector, 1 to the block size 0x1, or '-')"),
            ([22: twoSectors], "ata buffer of 2048 characters (1024 hex digits a sector, 1 to the block size 0x1, or '-')"),
            ([23: "0x10"], "the wrong number of values"), // MULTIPLE without BLOCK-SIZE: 24 words
            ([23: "0x3", 24: "0x1"], "ata multiple 0x3 (0, 1, 2, 4, 8 or 0x10)"),
            ([23: "0x20", 24: "0x1"], "ata multiple 0x20"),
            ([23: "0x8", 24: "0x4"], "ata block size 0x4 with multiple 0x8 (1, or the multiple while reading or writing)"),
            ([2: "0x50", 16: "0", 18: "0x0", 19: "0x0", 22: "-", 23: "0x4", 24: "0x4"], "ata block size 0x4 with multiple 0x4"),
            ([22: String(repeating: "a5", count: 2560), 23: "0x4", 24: "0x4"], "ata buffer of 5120 characters (1024 hex digits a sector, 1 to the block size 0x4, or '-')"),
            ([22: twoSectors, 23: "0x4", 24: "0x4"], "ata remaining 0x1 after a block of 2 (at most 0x10000 in all, 0 unless reading or writing, 0 after a short block)"),
            ([22: twoSectors, 18: "0xffff", 23: "0x2", 24: "0x2"], "ata remaining 0xffff after a block of 2"),
            ([22: twoSectors, 17: "0xe", 23: "0x2", 24: "0x2"], "ata lba 0xe with 2 more (past the disk's 16 sectors)"),
            // MULTIPLE 0 (none set) is no block size: the buffer's any length then is refused, not trapped on.
            ([16: "3", 22: "", 23: "0x0", 24: "0x0"], "ata block size 0x0 with multiple 0x0"),
            ([16: "3", 22: twoSectors, 23: "0x0", 24: "0x0"], "ata block size 0x0 with multiple 0x0"),
            ([19: "0x400", 22: twoSectors, 23: "0x2", 24: "0x2"], "ata position 0x400 (even, inside the buffer"),
            ([2: "0x50", 16: "0", 18: "0x0", 19: "0x0"], "ata buffer with no transfer in flight (it is '-')"),
            // The slave's nine registers after MULTIPLE and BLOCK-SIZE.
            ([23: "0x10", 24: "0x1", 25: "0x1", 26: "0x1", 27: "0xff", 28: "0xff", 29: "0x0", 30: "0x0", 31: "0x0", 32: "0x0", 33: "0x10"],
             "ata slave select 0x10 (bits 5 and 7 always set)"),
            ([23: "0x10", 24: "0x1", 25: "0x100"], "the wrong number of values"),
            ([23: "0x10", 24: "0x1", 25: "0x1", 26: "0x1", 27: "0xff", 28: "0xff", 29: "0x0", 30: "0x0", 31: "0x0", 32: "0x0", 33: "0x1b0"], "ata slave select '0x1b0'"),
            // The geometry's four after the slave's registers.
            ([34: "0x1"].merging(Self.slaveWords) { a, _ in a }, "the wrong number of values"),
            ([34: "0x0", 35: "0x10", 36: "0x3f", 37: "0x0"].merging(Self.slaveWords) { a, _ in a }, "ata geometry 0x0/0x10/0x3f translation 0x0 (1 to 0x3fff cylinders, 1 to 0x10 heads, 1 to 0x3f sectors a track, translation 0 to 2)"),
            ([34: "0x4000", 35: "0x10", 36: "0x3f", 37: "0x0"].merging(Self.slaveWords) { a, _ in a }, "ata geometry 0x4000/0x10/0x3f"),
            ([34: "0x10000", 35: "0x10", 36: "0x3f", 37: "0x0"].merging(Self.slaveWords) { a, _ in a }, "ata cylinders '0x10000'"),
            ([34: "0x2", 35: "0x11", 36: "0x3f", 37: "0x0"].merging(Self.slaveWords) { a, _ in a }, "ata geometry 0x2/0x11/0x3f"),
            ([34: "0x2", 35: "0x0", 36: "0x3f", 37: "0x0"].merging(Self.slaveWords) { a, _ in a }, "ata geometry 0x2/0x0/0x3f"),
            ([34: "0x2", 35: "0x10", 36: "0x40", 37: "0x0"].merging(Self.slaveWords) { a, _ in a }, "ata geometry 0x2/0x10/0x40"),
            ([34: "0x2", 35: "0x10", 36: "0x0", 37: "0x0"].merging(Self.slaveWords) { a, _ in a }, "ata geometry 0x2/0x10/0x0"),
            ([34: "0x2", 35: "0x10", 36: "0x3f", 37: "0x3"].merging(Self.slaveWords) { a, _ in a }, "ata geometry 0x2/0x10/0x3f translation 0x3"),
            ([34: "0x2", 35: "0x10", 36: "0x3f", 37: "+1"].merging(Self.slaveWords) { a, _ in a }, "ata translation '+1'"),
        ]
        for (changes, why) in cases {
            do {
                _ = try BuiltInDeviceState.decode(Array(line(changes).utf8), version: 1, where: "snap")
                Issue.record("accepted: \(changes)")
            } catch {
                #expect(error.message.hasPrefix("snap: launcher devices: ") && error.message.contains(why), "\(error.message)")
            }
        }
    }
}
