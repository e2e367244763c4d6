/// The task file of the ATA disk (`ATADisk`) and the transfer in progress: everything a
/// snapshot keeps of it (`BuiltInDeviceState`'s `ata` line). A value; the device guards
/// it with its lock.
///
/// The registers are QEMU's (hw/ide/core.c): each write to a task-file register moves
/// its old value into the "high order byte" copy (`hob…`) that LBA48 commands read; the
/// device starts as QEMU's `ide_reset` leaves it: the ATA signature (count 1, LBA low 1),
/// error 0 and status 0x50 (ready, seek complete). (SeaBIOS's probe, a reset and
/// IDENTIFY, leaves error 0 too; a software reset's diagnostic sets 0x01.)
struct ATAState: Equatable {
    enum Transfer: UInt8 {
        case none = 0, identify = 1, read = 2, write = 3
    }

    var status: UInt8 = ATAState.ready
    var error: UInt8 = 0
    var feature: UInt8 = 0, count: UInt8 = 1, lbaLow: UInt8 = 1, lbaMid: UInt8 = 0, lbaHigh: UInt8 = 0
    var hobFeature: UInt8 = 0, hobCount: UInt8 = 0, hobLow: UInt8 = 0, hobMid: UInt8 = 0, hobHigh: UInt8 = 0
    /// Device/head (port 0x1f6): bit 4 the drive (the slave is absent), bit 6 LBA, bits 0-3
    /// LBA bits 24-27 or the CHS head. Bits 5 and 7 always read as set.
    var select: UInt8 = 0xa0
    /// Device control (port 0x3f6): bit 1 nIEN (no interrupts), bit 2 SRST, bit 7 HOB.
    var control: UInt8 = 0
    var transfer = Transfer.none
    /// SET MULTIPLE MODE's setting: the sectors a DRQ block of READ/WRITE MULTIPLE moves
    /// (1, 2, 4, 8 or 16), 0 when none is set and they abort. 16 after power-on and a
    /// reset, as QEMU's `ide_reset` leaves it.
    var multiple: UInt8 = ATAState.maxMultiple
    /// The sectors a DRQ block of the command in flight moves: `multiple` for READ/WRITE
    /// MULTIPLE, 1 for any other (and with no transfer).
    var blockSize: UInt8 = 1
    /// The first sector in `buffer` (read or write), and how many follow the block in this
    /// command.
    var lba: UInt64 = 0
    var remaining: UInt32 = 0
    /// Whether the command in progress is LBA48 (how the task file is written back).
    var lba48 = false
    /// Bytes of `buffer` the guest has moved through the data port.
    var position = 0
    /// The interrupt line (IRQ 14) as driven: raised at a command's completion or a
    /// sector's DRQ, lowered by a status read, a new command or a reset.
    var line = false
    /// The block in flight, a whole number of sectors (`blockSectors`, at most
    /// `blockSize`); one sector of zeros with no transfer.
    var buffer = [UInt8](repeating: 0, count: ATAState.sectorSize)
    /// The absent slave's copy of the task file: every register write reaches both drives,
    /// as on QEMU's bus, so with the slave selected the count, LBA and device/head
    /// registers read back what was written (Linux's `ata_devchk` writes 0x55 and 0xaa and
    /// reads them back); only the master's commands and signature change the master's.
    var slave = SlaveRegisters()

    /// What QEMU's `IDEState` of an absent slave holds that a guest can read: after a reset
    /// the signature of no device (count 1, LBA low 1, LBA mid and high 0xff).
    struct SlaveRegisters: Equatable {
        var count: UInt8 = 1, lbaLow: UInt8 = 1, lbaMid: UInt8 = 0xff, lbaHigh: UInt8 = 0xff
        var hobCount: UInt8 = 0, hobLow: UInt8 = 0, hobMid: UInt8 = 0, hobHigh: UInt8 = 0
        var select: UInt8 = 0xa0

        /// Ports 0x1f2-0x1f5 (`register` 2-5): the old value to its HOB copy, as the master's.
        mutating func write(register: Int, _ value: UInt8) {
            switch register {
            case 2: (hobCount, count) = (count, value)
            case 3: (hobLow, lbaLow) = (lbaLow, value)
            case 4: (hobMid, lbaMid) = (lbaMid, value)
            case 5: (hobHigh, lbaHigh) = (lbaHigh, value)
            default: break
            }
        }

        func read(register: Int, hob: Bool) -> UInt8 {
            switch register {
            case 2: return hob ? hobCount : count
            case 3: return hob ? hobLow : lbaLow
            case 4: return hob ? hobMid : lbaMid
            case 5: return hob ? hobHigh : lbaHigh
            default: return 0
            }
        }
    }

    static let sectorSize = 512
    /// The most sectors SET MULTIPLE MODE accepts (IDENTIFY word 47), QEMU's MAX_MULT_SECTORS.
    static let maxMultiple: UInt8 = 16
    /// The most sectors a disk may have: what LBA48 reaches.
    static let maxSectors: UInt64 = 1 << 48
    // Status bits, as QEMU names them.
    static let busy: UInt8 = 0x80, ready: UInt8 = 0x50, drq: UInt8 = 0x08, err: UInt8 = 0x01
    /// Error register: command aborted.
    static let abort: UInt8 = 0x04

    /// Whether the selected drive is the (absent) slave.
    var slaveSelected: Bool { select & 0x10 != 0 }
    var interruptsDisabled: Bool { control & 0x02 != 0 }
    /// The sectors in `buffer`.
    var blockSectors: UInt32 { UInt32(buffer.count / ATAState.sectorSize) }
    /// Whether `n` is a setting SET MULTIPLE MODE accepts: 0 (none) or a power of two up to 16.
    static func validMultiple(_ n: UInt8) -> Bool { n <= maxMultiple && n & (n &- 1) == 0 }

    /// The signature an ATA device shows after a reset or EXECUTE DEVICE DIAGNOSTIC, as
    /// QEMU's `ide_set_signature`: the head bits cleared, the LBA and drive bits kept (a
    /// reset sets select to 0xa0 first).
    mutating func setSignature() {
        (count, lbaLow, lbaMid, lbaHigh) = (1, 1, 0, 0)
        select &= 0xf0
    }

    /// What a software reset (SRST) leaves, as QEMU's `ide_reset`: the task file and its
    /// HOB copies cleared, select 0xa0, then the signature; the slave's copy as after
    /// power-on.
    mutating func resetRegisters() {
        (feature, hobFeature, hobCount, hobLow, hobMid, hobHigh) = (0, 0, 0, 0, 0, 0)
        select = 0xa0
        setSignature()
        slave = SlaveRegisters()
    }

    /// A task-file write (ports 0x1f1-0x1f5, `register` 1-5): the old value to its HOB copy.
    mutating func write(register: Int, _ value: UInt8) {
        control &= ~0x80 // a write clears HOB, as QEMU's ide_clear_hob
        switch register {
        case 1: (hobFeature, feature) = (feature, value)
        case 2: (hobCount, count) = (count, value)
        case 3: (hobLow, lbaLow) = (lbaLow, value)
        case 4: (hobMid, lbaMid) = (lbaMid, value)
        case 5: (hobHigh, lbaHigh) = (lbaHigh, value)
        default: break
        }
    }

    /// A task-file read (ports 0x1f1-0x1f5): the HOB copy when device control bit 7 asks.
    func read(register: Int) -> UInt8 {
        let hob = control & 0x80 != 0
        switch register {
        case 1: return hob ? hobFeature : error
        case 2: return hob ? hobCount : count
        case 3: return hob ? hobLow : lbaLow
        case 4: return hob ? hobMid : lbaMid
        case 5: return hob ? hobHigh : lbaHigh
        default: return 0xff
        }
    }

    /// The sector count a command asks for: 0 means 256 (65536 for LBA48).
    func sectorCount(lba48: Bool) -> UInt32 {
        if lba48 {
            let n = UInt32(hobCount) << 8 | UInt32(count)
            return n == 0 ? 65536 : n
        }
        return count == 0 ? 256 : UInt32(count)
    }

    /// The first sector a command names: LBA28, LBA48, or CHS through `geometry`; nil for
    /// a CHS address with sector 0, head or sector past the geometry (no such sector).
    func address(lba48: Bool, geometry: ATAGeometry) -> UInt64? {
        if lba48 {
            return UInt64(hobHigh) << 40 | UInt64(hobMid) << 32 | UInt64(hobLow) << 24
                | UInt64(lbaHigh) << 16 | UInt64(lbaMid) << 8 | UInt64(lbaLow)
        }
        if select & 0x40 != 0 {
            return UInt64(select & 0x0f) << 24 | UInt64(lbaHigh) << 16 | UInt64(lbaMid) << 8 | UInt64(lbaLow)
        }
        let cylinder = UInt64(lbaHigh) << 8 | UInt64(lbaMid), head = UInt64(select & 0x0f), sector = UInt64(lbaLow)
        guard sector >= 1, sector <= geometry.sectorsPerTrack, head < geometry.heads else { return nil }
        return (cylinder * geometry.heads + head) * geometry.sectorsPerTrack + sector - 1
    }

    /// Writes `lba` back into the task file, as the drive leaves it after each sector.
    mutating func setAddress(_ lba: UInt64, lba48: Bool, geometry: ATAGeometry) {
        if lba48 {
            (hobHigh, hobMid, hobLow) = (UInt8(truncatingIfNeeded: lba >> 40), UInt8(truncatingIfNeeded: lba >> 32), UInt8(truncatingIfNeeded: lba >> 24))
        } else if select & 0x40 != 0 {
            select = select & 0xf0 | UInt8(truncatingIfNeeded: lba >> 24) & 0x0f
        } else {
            let perCylinder = geometry.heads * geometry.sectorsPerTrack
            let cylinder = lba / perCylinder, rest = lba % perCylinder
            (lbaHigh, lbaMid) = (UInt8(truncatingIfNeeded: cylinder >> 8), UInt8(truncatingIfNeeded: cylinder))
            select = select & 0xf0 | UInt8(truncatingIfNeeded: rest / geometry.sectorsPerTrack) & 0x0f
            lbaLow = UInt8(truncatingIfNeeded: rest % geometry.sectorsPerTrack + 1)
            return
        }
        (lbaHigh, lbaMid, lbaLow) = (UInt8(truncatingIfNeeded: lba >> 16), UInt8(truncatingIfNeeded: lba >> 8), UInt8(truncatingIfNeeded: lba))
    }
}

/// The CHS geometry the disk reports (IDENTIFY words 1, 3, 6, 54-58, and the CMOS's drive
/// C bytes), as QEMU's `hd_geometry_guess` (hw/block/hd-geometry.c) guesses it for a raw
/// image: from the first partition of an MBR (0x55 0xaa at 510) with sectors and an end
/// head, its end head + 1 heads and end sector (bits 0-5) sectors a track, taken when the
/// disk holds 1 to 16383 such cylinders; when that gives more than 16 heads (a BIOS's LBA
/// translation), or without a partition table, 16 heads, 63 sectors and as many cylinders
/// as fit, 2 to 16383 (`guess_chs_for_size`: a disk under 2016 sectors claims more CHS
/// sectors than it has, as QEMU's does). The partition table is the image's: any bytes.
struct ATAGeometry: Equatable {
    /// The BIOS's CHS translation QEMU picks with the geometry (`BIOS_ATA_TRANSLATION_*`),
    /// the CMOS's byte 0x39 for drive C.
    enum Translation: UInt8 { case none = 0, lba = 1, large = 2 }

    let cylinders: UInt64, heads: UInt64, sectorsPerTrack: UInt64
    let translation: Translation

    /// A geometry as a snapshot keeps it (`ATAState.decode` checks the bounds).
    init(cylinders: UInt64, heads: UInt64, sectorsPerTrack: UInt64, translation: Translation) {
        (self.cylinders, self.heads, self.sectorsPerTrack, self.translation) = (cylinders, heads, sectorsPerTrack, translation)
    }

    /// The size-guessed geometry (`guess_chs_for_size`), translated as `hd_bios_chs_auto_trans`.
    init(sectors: UInt64) {
        self.init(sizeGuessFor: sectors, biosTranslated: false)
    }

    /// `biosTranslated`: a partition table's geometry had more than 16 heads, so a BIOS
    /// translated it: LARGE while cylinders x heads are at most 131072, else LBA.
    private init(sizeGuessFor sectors: UInt64, biosTranslated: Bool) {
        cylinders = max(2, min(16383, sectors / (16 * 63)))
        heads = 16
        sectorsPerTrack = 63
        translation = biosTranslated ? (cylinders * heads <= 131_072 ? .large : .lba) : (cylinders <= 1024 ? .none : .lba)
    }

    /// The geometry of a disk of `sectors` whose sector 0 is `mbr` (nil: unreadable).
    init(mbr: [UInt8]?, sectors: UInt64) {
        guard let mbr, mbr.count == 512, mbr[510] == 0x55, mbr[511] == 0xaa else {
            self.init(sectors: sectors)
            return
        }
        for entry in stride(from: 0x1be, to: 0x1fe, by: 16) {
            // An entry with sectors (its 32-bit count not 0) and an end head past 0.
            let hasSectors = mbr[entry + 12 ..< entry + 16].contains { $0 != 0 }
            let endHead = UInt64(mbr[entry + 5]), endSector = UInt64(mbr[entry + 6] & 63)
            guard hasSectors, endHead != 0, endSector != 0 else { continue }
            // At most 256 heads of 63 sectors: no overflow.
            let heads = endHead + 1, cylinders = sectors / (heads * endSector)
            guard cylinders >= 1, cylinders <= 16383 else { continue }
            if heads > 16 {
                self.init(sizeGuessFor: sectors, biosTranslated: true)
            } else {
                self.init(cylinders: cylinders, heads: heads, sectorsPerTrack: endSector, translation: .none)
            }
            return
        }
        self.init(sectors: sectors)
    }
}
