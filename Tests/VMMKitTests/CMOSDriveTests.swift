import Foundation
import Testing

/// The CMOS bytes QEMU's `pc_cmos_init` and `pc_cmos_init_late` (hw/i386/pc.c) fill for
/// its BIOS, read by a guest through ports 0x70/0x71: the empty 2.88 MB floppy drive A
/// of QEMU's `pc`, the boot order "cad", and with `--hda` the disk's type, geometry and
/// BIOS translation. Before, all of them read 0 (and the equipment byte said no floppy).
@Suite("CMOS drive and boot-order bytes as QEMU's pc on real KVM", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct CMOSDriveTests {
    static let indices: [UInt8] = [0x10, 0x12, 0x14, 0x19, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x38, 0x39, 0x3d]

    /// For each of `indices`: mov $i,%al; out %al,$0x70; in $0x71,%al. Then debug-exit
    /// 0x10 (status 33); hlt.
    static let probe: [UInt8] = indices.flatMap { [0xb0, $0, 0xe6, 0x70, 0xe4, 0x71] } + [0xb0, 0x10, 0xe6, 0xf4, 0xf4]

    /// The bytes the guest read, in the order of `indices`, from the exit trace.
    static func reads(_ extra: [String]) throws -> [Int] {
        let probe = try VMMProcess.temp("cmosdrives.bin", Self.probe)
        let r = try VMMProcess.run(["run", probe, "--load-addr", "0x100000", "--max-seconds", "60", "--strict-io",
                                    "--trace", "exits"] + extra)
        #expect(r.status == 33, "\(r.stderr)")
        return r.stderr.split(separator: "\n").filter { $0.contains(" io in port=0x71 ") }.compactMap { line in
            line.split(separator: " ").first { $0.hasPrefix("data=0x") }.flatMap { Int($0.dropFirst(7), radix: 16) }
        }
    }

    @Test("without --hda: floppy A 2.88 MB (0x10 = 0x50), equipment 0x07, no hard disk, boot order cad (0x3d = 0x12, 0x38 = 0x30)")
    func noDisk() throws {
        let expected = [0x50, 0, 0x07, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x30, 0, 0x12]
        #expect(try Self.reads([]) == expected)
    }

    @Test("with --hda of 1100 cylinders (16 heads, 63 sectors): drive C type 47, its geometry in 0x1b-0x23, LBA translation in 0x39")
    func disk() throws {
        let dir = try VMMProcess.scratch("cmos", "hda")
        let path = dir + "/disk.img"
        #expect(FileManager.default.createFile(atPath: path, contents: nil))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.truncate(atOffset: 1100 * 16 * 63 * 512) // sparse
        try handle.close()
        let expected = [0x50, 0xf0, 0x07, 47, 0x4c, 0x04, 16, 0xff, 0xff, 0xc8, 0x4c, 0x04, 63, 0x30, 0x01, 0x12]
        #expect(try Self.reads(["--hda", path]) == expected)
    }

    /// A sparse image of `sectors` whose MBR's first partition ends at `endHead`/`endSector`.
    static func partitioned(_ name: String, sectors: UInt64, endHead: UInt8, endSector: UInt8) throws -> String {
        let path = try VMMProcess.scratch("cmos", name) + "/disk.img"
        var mbr = [UInt8](repeating: 0, count: 512)
        (mbr[0x1be + 5], mbr[0x1be + 6], mbr[0x1be + 12]) = (endHead, endSector, 1)
        (mbr[510], mbr[511]) = (0x55, 0xaa)
        #expect(FileManager.default.createFile(atPath: path, contents: Data(mbr)))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.truncate(atOffset: sectors * 512)
        try handle.close()
        return path
    }

    @Test("with --hda whose MBR's partition ends at head 7, sector 32 (QEMU's hd_geometry_guess): drive C of 8 heads, 32 sectors a track, no translation")
    func partitionGeometry() throws {
        let path = try Self.partitioned("hda-chs", sectors: 1100 * 8 * 32, endHead: 7, endSector: 32)
        let expected = [0x50, 0xf0, 0x07, 47, 0x4c, 0x04, 8, 0xff, 0xff, 0xc0, 0x4c, 0x04, 32, 0x30, 0x00, 0x12]
        #expect(try Self.reads(["--hda", path]) == expected)
    }

    @Test("with --hda whose MBR's partition has 255 heads (a BIOS-translated disk): the size guess, LARGE translation (0x39 = 2), as QEMU's")
    func translatedGeometry() throws {
        let path = try Self.partitioned("hda-large", sectors: 1100 * 16 * 63, endHead: 254, endSector: 63)
        let expected = [0x50, 0xf0, 0x07, 47, 0x4c, 0x04, 16, 0xff, 0xff, 0xc8, 0x4c, 0x04, 63, 0x30, 0x02, 0x12]
        #expect(try Self.reads(["--hda", path]) == expected)
    }
}
