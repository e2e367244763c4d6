import Foundation
import Testing

/// READ/WRITE MULTIPLE under `vmm run --hda`: an interrupt-driven driver written as for
/// QEMU (Examples/GuestImages/qemu/atamulti.S) sets a block size, reads and writes in
/// blocks, one IRQ 14 each, asks the disk's size with READ NATIVE MAX ADDRESS EXT; a block
/// half-read survives a snapshot and a restore in a new process.
@Suite("vmm --hda: READ/WRITE MULTIPLE on real KVM", .serialized, .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct ATAMultipleGuestTests {
    static let guest = VMMProcess.guest("atamulti.elf")
    static let done: Int32 = (0x24 << 1) | 1

    static let head = """
        identify: multiple 8010 set 0110
        set multiple 03: status 41 error 04
        set multiple 04: status 50 error 00
        identify: set 0104
        block: status 58

        """
    /// After the first block's interrupt: its four sectors, then the rest of the run.
    static let rest = """
        sector 1 of the disk
        sector 2 of the disk
        sector 3 of the disk
        sector 4 of the disk
        block: status 58
        sector 5 of the disk
        sector 6 of the disk
        after: lba low 07 count 00
        written: status 58 error 00
        written: status 50 error 00
        block: status 58
        multiple write 0
        multiple write 1
        multiple write 2
        multiple write 3
        block: status 58
        multiple write 4
        native max: 00000F
        set multiple 00: status 50 error 00
        no size: status 41 error 04

        """

    func run(_ args: [String]) throws -> VMMProcess.Result { try PluginListingTests.run(args, bound: 120) }

    /// The image's sectors 7-13: the guest's five between untouched neighbours.
    static func expectWritten(_ disk: String) throws {
        #expect(Array(try ATAGuestTests.sector(disk, 7).prefix(21)) == Array("sector 7 of the disk\0".utf8))
        for n in 0..<5 {
            #expect(Array(try ATAGuestTests.sector(disk, 8 + n).prefix(17)) == Array("multiple write \(n)\0".utf8))
        }
        #expect(Array(try ATAGuestTests.sector(disk, 13).prefix(22)) == Array("sector 13 of the disk\0".utf8))
    }

    @Test("the guest sets a block size of 4 (3 is refused), reads 6 sectors in 2 blocks and writes 5 in 2, one interrupt a block; the image holds what it wrote; READ NATIVE MAX ADDRESS EXT gives the last sector; with no size set READ MULTIPLE is aborted")
    func multiple() throws {
        let dir = try VMMProcess.scratch("atamulti", "rw")
        let disk = try ATAGuestTests.image(dir)
        let r = try run(["run", Self.guest, "--hda", disk, "--strict-io"])
        #expect(r.stdout == Self.head + Self.rest)
        #expect(r.stderr == "")
        #expect(r.status == Self.done)
        try Self.expectWritten(disk)
        // A larger disk: the last sector moves with it.
        let big = try ATAGuestTests.image(try VMMProcess.scratch("atamulti", "big"), sectors: 300)
        let onBig = try run(["run", Self.guest, "--hda", big])
        #expect(onBig.stdout == Self.head + Self.rest.replacingOccurrences(of: "native max: 00000F", with: "native max: 00012B"))
        #expect(onBig.status == Self.done)
    }

    @Test("a block of 4 stopped a sector and a half in survives a snapshot: the launcher state keeps the block size and the block, and a new process reads the rest of it and goes on")
    func snapshotMidBlock() throws {
        let dir = try VMMProcess.scratch("atamulti", "snapshot")
        let disk = try ATAGuestTests.image(dir)
        let (snap, saved) = try ATAGuestTests.snapshotWaiting(Self.guest, disk: disk, dir: dir, printed: Self.head + "reading, waiting for a key\n")
        let ata = saved.split(separator: "\n").first { $0.hasPrefix("ata ") }.map { $0.split(separator: " ") } ?? []
        // Sectors 1-4 in the buffer at byte 0x300, 2 more to come, block size 4 of 4 set;
        // then the absent slave's task file, which the command's register writes reached.
        #expect(ata.count == 34, "\(saved)")
        if ata.count == 34 {
            #expect(Array(ata[16...21]) == ["2", "0x1", "0x2", "0x300", "0", "0"])
            #expect(ata[22].count == 4 * 1024 && ata[22].hasPrefix("736563746f72203120"), "sector 1 first")
            #expect(Array(ata[23...24]) == ["0x4", "0x4"])
            #expect(Array(ata[25...26]) == ["0x6", "0x1"], "the slave keeps the count and LBA written")
        }
        let restored = try run(["restore", snap, "--hda", disk, "--serial", "stdio", "--max-seconds", "60"])
        #expect(restored.stdout == Self.rest)
        #expect(restored.stderr == "")
        #expect(restored.status == Self.done)
        try Self.expectWritten(disk)
    }
}
