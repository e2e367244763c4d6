import VMMKit

/// The disk's line in the launcher's device blob (`BuiltInDeviceState`, Docs/SnapshotFormat.md):
/// `ata SECTORS STATUS ERROR FEATURE COUNT LBA-LOW LBA-MID LBA-HIGH` then the five HOB
/// copies, `SELECT CONTROL TRANSFER LBA REMAINING POSITION LBA48 LINE BUFFER
/// [MULTIPLE BLOCK-SIZE]`; numbers in `0x` hex, TRANSFER 0-3 (none, identify, read,
/// write), LBA48 and LINE 0 or 1, BUFFER the block in flight (1 to 16 sectors, 1024 hex
/// digits each) or `-` with no transfer; MULTIPLE and BLOCK-SIZE only when not 16 and 1
/// (a snapshot written before READ/WRITE MULTIPLE has neither), then, only when the absent
/// slave's copy of the task file is not as after a reset, `SLAVE-COUNT SLAVE-LBA-LOW
/// SLAVE-LBA-MID SLAVE-LBA-HIGH`, their four HOB copies and `SLAVE-SELECT` (a snapshot
/// written before the slave kept them restores it as after a reset), then, only when the
/// disk's geometry is not its size's guess, `CYLINDERS HEADS SECTORS-PER-TRACK
/// TRANSLATION` (a geometry from the image's partition table: the guest computed its CHS
/// addresses from it, so the restore keeps it whatever the image's table says by then; a
/// line without it, all written before the partition table counted, restores the size's
/// guess, what its guest saw).
extension ATAState {
    /// What a snapshot keeps: the state, the size of the disk it belongs to and the
    /// geometry its guest saw.
    struct Saved: Equatable {
        var sectors: UInt64
        var state: ATAState
        var geometry: ATAGeometry
    }

    static let blobWords = 23
    /// The word counts a line may have: without and with MULTIPLE and BLOCK-SIZE, with
    /// the slave's nine registers after them, and with the geometry's four after those.
    static let blobWordCounts = [blobWords, blobWords + 2, blobWords + 11, blobWords + 15]
    /// Status bits the device ever sets: BSY, DRDY, DSC, DRQ, ERR.
    static let statusBits: UInt8 = 0xd9

    static func blobLine(_ saved: Saved) -> String {
        let s = saved.state
        let bytes = [s.status, s.error, s.feature, s.count, s.lbaLow, s.lbaMid, s.lbaHigh,
                     s.hobFeature, s.hobCount, s.hobLow, s.hobMid, s.hobHigh, s.select, s.control]
        let buffer = s.transfer == .none ? "-" : BuiltInDeviceState.hexDigits(s.buffer)
        let v = s.slave, g = saved.geometry
        let geometry = g == ATAGeometry(sectors: saved.sectors) ? ""
            : " " + [g.cylinders, g.heads, g.sectorsPerTrack, UInt64(g.translation.rawValue)].map { hex($0) }.joined(separator: " ")
        let slave = v == SlaveRegisters() && geometry.isEmpty ? "" : " " + [v.count, v.lbaLow, v.lbaMid, v.lbaHigh, v.hobCount, v.hobLow, v.hobMid, v.hobHigh, v.select]
            .map { hex($0) }.joined(separator: " ") + geometry
        let multiple = (s.multiple, s.blockSize) == (maxMultiple, 1) && slave.isEmpty ? "" : " \(hex(s.multiple)) \(hex(s.blockSize))" + slave
        return "ata \(hex(saved.sectors)) " + bytes.map { hex($0) }.joined(separator: " ")
            + " \(s.transfer.rawValue) \(hex(s.lba)) \(hex(s.remaining)) \(hex(s.position)) \(s.lba48 ? 1 : 0) \(s.line ? 1 : 0) \(buffer)" + multiple
    }

    /// `words` (the line split at spaces, `ata` first, a count in `blobWordCounts`), every
    /// value checked.
    static func decode(_ words: [Substring], _ bad: (String) -> LauncherError) throws(LauncherError) -> Saved {
        func value<T: FixedWidthInteger & UnsignedInteger>(_ i: Int, _ what: String, _: T.Type) throws(LauncherError) -> T {
            guard let v = BuiltInDeviceState.hexValue(words[i], T.self) else { throw bad("ata \(what) \(String(words[i]).quotedForMessage)") }
            return v
        }
        func flag(_ i: Int, _ what: String) throws(LauncherError) -> Bool {
            guard words[i] == "0" || words[i] == "1" else { throw bad("ata \(what) \(String(words[i]).quotedForMessage) (0 or 1)") }
            return words[i] == "1"
        }
        let sectors = try value(1, "sectors", UInt64.self)
        guard sectors >= 1, sectors <= maxSectors else { throw bad("ata sectors \(hex(sectors)) (1 to 2^48)") }
        let names = ["status", "error", "feature", "count", "lba low", "lba mid", "lba high", "hob feature", "hob count",
                     "hob lba low", "hob lba mid", "hob lba high", "select", "control"]
        var b: [UInt8] = []
        for (i, name) in names.enumerated() { b.append(try value(2 + i, name, UInt8.self)) }
        var s = ATAState()
        (s.status, s.error, s.feature, s.count, s.lbaLow, s.lbaMid, s.lbaHigh) = (b[0], b[1], b[2], b[3], b[4], b[5], b[6])
        (s.hobFeature, s.hobCount, s.hobLow, s.hobMid, s.hobHigh, s.select, s.control) = (b[7], b[8], b[9], b[10], b[11], b[12], b[13])
        guard s.status & ~statusBits == 0 else { throw bad("ata status \(hex(s.status)) (bits other than 0xd9)") }
        // BSY only ever shows while SRST is held (a snapshot of the model before resets
        // completed at once): a busy drive without it took no write or command until the
        // guest toggled SRST.
        guard s.status & ATAState.busy == 0 || s.control & 0x04 != 0 else {
            throw bad("ata status \(hex(s.status)) busy with control \(hex(s.control)) (busy only while SRST, 0x04, is held)")
        }
        guard s.select & 0xa0 == 0xa0 else { throw bad("ata select \(hex(s.select)) (bits 5 and 7 always set)") }
        guard let transfer = UInt8(plainDecimal: words[16]).flatMap(Transfer.init(rawValue:)) else {
            throw bad("ata transfer \(String(words[16]).quotedForMessage) (0 to 3)")
        }
        s.transfer = transfer
        s.lba = try value(17, "lba", UInt64.self)
        s.remaining = try value(18, "remaining", UInt32.self)
        let position = try value(19, "position", UInt16.self)
        s.lba48 = try flag(20, "lba48")
        s.line = try flag(21, "line")
        if words.count > blobWords {
            s.multiple = try value(23, "multiple", UInt8.self)
            s.blockSize = try value(24, "block size", UInt8.self)
            guard validMultiple(s.multiple) else { throw bad("ata multiple \(hex(s.multiple)) (0, 1, 2, 4, 8 or 0x10)") }
            guard s.blockSize == 1 || s.multiple != 0 && s.blockSize == s.multiple && (transfer == .read || transfer == .write) else {
                throw bad("ata block size \(hex(s.blockSize)) with multiple \(hex(s.multiple)) (1, or the multiple while reading or writing)")
            }
        }
        if words.count > blobWords + 2 {
            let names = ["count", "lba low", "lba mid", "lba high", "hob count", "hob lba low", "hob lba mid", "hob lba high", "select"]
            var v: [UInt8] = []
            for (i, name) in names.enumerated() { v.append(try value(25 + i, "slave \(name)", UInt8.self)) }
            s.slave = SlaveRegisters(count: v[0], lbaLow: v[1], lbaMid: v[2], lbaHigh: v[3], hobCount: v[4], hobLow: v[5], hobMid: v[6], hobHigh: v[7], select: v[8])
            guard s.slave.select & 0xa0 == 0xa0 else { throw bad("ata slave select \(hex(s.slave.select)) (bits 5 and 7 always set)") }
        }
        var geometry = ATAGeometry(sectors: sectors)
        if words.count > blobWords + 11 {
            let cylinders = try value(34, "cylinders", UInt16.self), heads = try value(35, "heads", UInt8.self)
            let perTrack = try value(36, "sectors per track", UInt8.self), translation = try value(37, "translation", UInt8.self)
            guard (1...16383).contains(cylinders), (1...16).contains(heads), (1...63).contains(perTrack),
                  let t = ATAGeometry.Translation(rawValue: translation) else {
                throw bad("ata geometry \(hex(cylinders))/\(hex(heads))/\(hex(perTrack)) translation \(hex(translation)) (1 to 0x3fff cylinders, 1 to 0x10 heads, 1 to 0x3f sectors a track, translation 0 to 2)")
            }
            geometry = ATAGeometry(cylinders: UInt64(cylinders), heads: UInt64(heads), sectorsPerTrack: UInt64(perTrack), translation: t)
        }
        // The buffer: `-`, or the block in flight, whole sectors, at most a block's.
        let digits = 2 * sectorSize, buffer = words[22], bufferSectors = buffer.utf8.count / digits
        guard buffer == "-" || buffer.utf8.count % digits == 0 && bufferSectors >= 1 && bufferSectors <= Int(s.blockSize) else {
            throw bad("ata buffer of \(buffer.utf8.count) characters (\(digits) hex digits a sector, 1 to the block size \(hex(s.blockSize)), or '-')")
        }
        let sectorsInBuffer = buffer == "-" ? 1 : UInt32(bufferSectors)
        // DRQ is set exactly while a transfer waits on the data port, which moves 2 or 4
        // bytes at a time and starts the next sector at 512.
        guard (s.status & drq != 0) == (transfer != .none) else { throw bad("ata status \(hex(s.status)) with transfer \(transfer.rawValue) (DRQ is set exactly during one)") }
        guard Int(position) < Int(sectorsInBuffer) * sectorSize, position % 2 == 0, transfer != .none || position == 0 else {
            throw bad("ata position \(hex(position)) (even, inside the buffer, 0 with no transfer)")
        }
        // Below 0x10000 with the block: a command moves at most 65536 sectors. A block
        // short of the block size is the command's last.
        guard s.remaining <= 65536 - sectorsInBuffer, transfer == .read || transfer == .write || s.remaining == 0,
              sectorsInBuffer == UInt32(s.blockSize) || s.remaining == 0 else {
            throw bad("ata remaining \(hex(s.remaining)) after a block of \(sectorsInBuffer) (at most 0x10000 in all, 0 unless reading or writing, 0 after a short block)")
        }
        guard s.lba < sectors, UInt64(sectorsInBuffer) + UInt64(s.remaining) <= sectors - s.lba || transfer == .none || transfer == .identify else {
            throw bad("ata lba \(hex(s.lba)) with \(sectorsInBuffer - 1 + s.remaining) more (past the disk's \(sectors) sectors)")
        }
        s.position = Int(position)
        if buffer == "-" {
            guard transfer == .none else { throw bad("ata buffer '-' with a transfer in flight") }
        } else {
            guard transfer != .none else { throw bad("ata buffer with no transfer in flight (it is '-')") }
            s.buffer = try BuiltInDeviceState.bytes(hexDigits: buffer, count: Int(sectorsInBuffer) * sectorSize, "ata buffer", bad)
        }
        return Saved(sectors: sectors, state: s, geometry: geometry)
    }
}
