/// The 512 bytes IDENTIFY DEVICE (0xec) returns for the disk, laid out as QEMU's
/// `ide_identify` lays out its hard disk's, less what this disk does not do: no DMA
/// (words 49 bit 8, 63, 88 clear), so a driver that reads the words picks PIO. READ/WRITE
/// MULTIPLE take blocks of up to 16 sectors (word 47); word 59, the block size set, is
/// the disk's to fill in at each IDENTIFY (`ATADisk`).
enum ATAIdentify {
    static let serial = "VMM00001", firmware = "1.0", model = "VMMKit HARDDISK"

    static func data(sectors: UInt64, geometry g: ATAGeometry) -> [UInt8] {
        var words = [UInt16](repeating: 0, count: 256)
        let chs = g.cylinders * g.heads * g.sectorsPerTrack
        words[0] = 0x0040 // a fixed disk
        words[1] = UInt16(g.cylinders)
        words[3] = UInt16(g.heads)
        words[4] = UInt16(512 * g.sectorsPerTrack) // obsolete, as QEMU fills it
        words[5] = 512
        words[6] = UInt16(g.sectorsPerTrack)
        put(serial, 20, at: 10, in: &words)
        words[20] = 3 // buffer type: dual ported, read cache
        words[21] = 512 // buffer size in sectors
        words[22] = 4 // ECC bytes
        put(firmware, 8, at: 23, in: &words)
        put(model, 40, at: 27, in: &words)
        words[47] = 0x8000 | UInt16(ATAState.maxMultiple) // READ/WRITE MULTIPLE: blocks of up to 16
        words[48] = 1 // 32-bit PIO
        words[49] = 1 << 11 | 1 << 9 // IORDY, LBA
        words[51] = 0x200 // PIO timing
        words[52] = 0x200
        words[53] = 1 | 2 // words 54-58 and 64-70 valid
        words[54] = UInt16(g.cylinders)
        words[55] = UInt16(g.heads)
        words[56] = UInt16(g.sectorsPerTrack)
        words[57] = UInt16(truncatingIfNeeded: chs)
        words[58] = UInt16(truncatingIfNeeded: chs >> 16)
        let lba28 = min(sectors, 0x0fff_ffff)
        words[60] = UInt16(truncatingIfNeeded: lba28)
        words[61] = UInt16(truncatingIfNeeded: lba28 >> 16)
        words[64] = 0x03 // PIO modes 3 and 4
        words[65...68] = [120, 120, 120, 120]
        words[80] = 0xf0 // ATA-4 to ATA-7
        words[81] = 0x16
        words[82] = 1 << 14 | 1 << 5 // NOP (which always aborts), write cache
        words[83] = 1 << 14 | 1 << 13 | 1 << 12 | 1 << 10 // FLUSH CACHE (EXT), LBA48
        words[84] = 1 << 14
        words[85] = 1 << 14 | 1 << 5
        words[86] = 1 << 13 | 1 << 12 | 1 << 10
        words[87] = 1 << 14
        for i in 0..<4 { words[100 + i] = UInt16(truncatingIfNeeded: sectors >> (16 * UInt64(i))) }
        return words.flatMap { [UInt8(truncatingIfNeeded: $0), UInt8(truncatingIfNeeded: $0 >> 8)] }
    }

    /// ATA strings: padded with spaces, two characters a word, the first in the high byte.
    private static func put(_ text: String, _ length: Int, at word: Int, in words: inout [UInt16]) {
        let bytes = Array(text.utf8.prefix(length)) + [UInt8](repeating: 0x20, count: max(0, length - text.utf8.count))
        for i in stride(from: 0, to: length, by: 2) {
            words[word + i / 2] = UInt16(bytes[i]) << 8 | UInt16(bytes[i + 1])
        }
    }
}
