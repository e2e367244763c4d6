/// What the empty CD-ROM drive (`ATAPIDrive`) answers to a packet command and to IDENTIFY
/// PACKET DEVICE, as QEMU's hw/ide/atapi.c and `ide_atapi_identify` (hw/ide/core.c)
/// answer for its default `pc` drive with no medium (drive index 2, the secondary master).
enum ATAPICommands {
    /// How a packet command ends (`ide_atapi_cmd_ok`, `ide_atapi_cmd_error`,
    /// `ide_atapi_cmd_reply`, or `ide_abort_command` for a zero byte count limit).
    enum Outcome: Equatable {
        case ok
        case error(key: UInt8, asc: UInt8)
        /// `bytes`, cut to the allocation length `max`.
        case reply([UInt8], max: Int)
        case abort
    }

    /// QEMU's `"QM%05d"` of its third IDE unit (`ide_init1` numbers them from 1, the
    /// secondary master third), its `qemu_hw_version()` and its CD model.
    static let serial = "QM00003", firmware = "2.5+", model = "QEMU DVD-ROM"
    static let notReady: UInt8 = 2, illegalRequest: UInt8 = 5
    static let mediumNotPresent: UInt8 = 0x3a, invalidOpcode: UInt8 = 0x20, invalidField: UInt8 = 0x24
    static let savingNotSupported: UInt8 = 0x39, dataPhaseError: UInt8 = 0x4b, removalPrevented: UInt8 = 0x53

    /// QEMU's CHECK_READY commands: with no medium, NOT READY / MEDIUM NOT PRESENT before
    /// anything else (TEST UNIT READY, READ CAPACITY, READ(10), SEEK, READ TOC, READ DISC
    /// INFORMATION, READ(12), READ DVD STRUCTURE, READ CD).
    static let checkReady: Set<UInt8> = [0x00, 0x25, 0x28, 0x2b, 0x43, 0x51, 0xa8, 0xad, 0xbe]
    /// Those of the rest that send data, refused (aborted) with a zero byte count limit.
    static let sendsData: Set<UInt8> = [0x03, 0x12, 0x46, 0x4a, 0x5a, 0xbd]

    /// The 512 bytes of IDENTIFY PACKET DEVICE, QEMU's words less the DMA ones (49 bit 8,
    /// 53 bit 2, 62, 63, 88), as the disk's identify leaves them out: this channel does no DMA.
    static let identify: [UInt8] = {
        var w = [UInt16](repeating: 0, count: 256)
        w[0] = 2 << 14 | 5 << 8 | 1 << 7 | 2 << 5 // ATAPI, CD-ROM, removable, 50 µs DRQ, 12-byte packets
        put(serial, 20, at: 10, in: &w)
        (w[20], w[21], w[22]) = (3, 512, 4)
        put(firmware, 8, at: 23, in: &w)
        put(model, 40, at: 27, in: &w)
        w[48] = 1
        w[49] = 1 << 9 // LBA
        w[53] = 3 // words 54-58 and 64-70 valid
        w[64] = 3 // PIO modes 3 and 4
        (w[65], w[66], w[67], w[68]) = (0xb4, 0xb4, 0x12c, 0xb4)
        (w[71], w[72]) = (30, 30)
        w[80] = 0x1e // ATA/ATAPI-1 to -4
        return w.flatMap { [UInt8(truncatingIfNeeded: $0), UInt8(truncatingIfNeeded: $0 >> 8)] }
    }()

    /// ATA strings: space-padded, two characters a word, the first in the high byte.
    private static func put(_ text: String, _ length: Int, at word: Int, in w: inout [UInt16]) {
        let b = padded(text, length)
        for i in stride(from: 0, to: length, by: 2) { w[word + i / 2] = UInt16(b[i]) << 8 | UInt16(b[i + 1]) }
    }

    /// `text` cut or space-padded to `length` bytes (QEMU's `padstr8`).
    static func padded(_ text: String, _ length: Int) -> [UInt8] {
        Array(text.utf8.prefix(length)) + [UInt8](repeating: 0x20, count: max(0, length - text.utf8.count))
    }

    /// The command in `cdb` (12 bytes) on the drive `s`, as QEMU's `ide_atapi_cmd`: a
    /// command that needs a medium is NOT READY, a data command with a zero byte count
    /// limit (LBA mid and high) is aborted, an unknown one is ILLEGAL REQUEST. The tray and
    /// its lock change here; the sense is the caller's to set from the outcome.
    static func run(_ cdb: [UInt8], _ s: inout ATAPIState) -> Outcome {
        let op = cdb[0]
        if checkReady.contains(op) { return .error(key: notReady, asc: mediumNotPresent) }
        if sendsData.contains(op), s.t.lbaMid == 0, s.t.lbaHigh == 0 { return .abort }
        func be16(_ i: Int) -> Int { Int(cdb[i]) << 8 | Int(cdb[i + 1]) }
        switch op {
        case 0x03: // REQUEST SENSE: fixed format, current; only a UNIT ATTENTION clears.
            var d = [UInt8](repeating: 0, count: 18)
            (d[0], d[2], d[7], d[12]) = (0xf0, s.senseKey, 10, s.asc)
            return .reply(d, max: Int(cdb[4]))
        case 0x12: return inquiry(cdb)
        case 0x1b: // START STOP UNIT: the tray, unless locked (ILLEGAL REQUEST: no medium).
            let start = cdb[4] & 1 != 0, loadEject = cdb[4] & 2 != 0
            guard cdb[4] & 0xf0 == 0, loadEject else { return .ok }
            if !start, !s.trayOpen, s.trayLocked { return .error(key: illegalRequest, asc: removalPrevented) }
            s.trayOpen = !start
            return .ok
        case 0x1e: // PREVENT ALLOW MEDIUM REMOVAL
            s.trayLocked = cdb[4] & 1 != 0
            return .ok
        case 0x46: // GET CONFIGURATION: feature 0 only; no current profile, DVD-ROM and CD-ROM.
            guard cdb[2] == 0, cdb[3] == 0 else { return .error(key: illegalRequest, asc: invalidField) }
            let d: [UInt8] = [0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 3, 8, 0, 0x10, 0, 0, 0, 0x08, 0, 0]
            return .reply(d, max: min(be16(7), 512))
        case 0x4a: // GET EVENT STATUS NOTIFICATION: polled only; the media class, no event.
            guard cdb[1] & 1 != 0 else { return .error(key: illegalRequest, asc: invalidField) }
            let d: [UInt8] = cdb[4] & 0x10 != 0 ? [0, 4, 4, 0x10, 0, s.trayOpen ? 1 : 0, 0, 0] : [0, 0, 0x80, 0x10]
            return .reply(d, max: be16(7))
        case 0x5a: return modeSense(cdb, locked: s.trayLocked)
        case 0xbb: return .ok // SET CD SPEED
        case 0xbd: return .reply([0, 0, 0, 0, 0, 1, 0, 0], max: be16(8)) // MECHANISM STATUS
        default: return .error(key: illegalRequest, asc: invalidOpcode)
        }
    }

    /// INQUIRY: the 36-byte standard data, or the EVPD pages 0 (supported pages) and 0x83
    /// (device identification: the serial, then "ATA", the model and the serial when the
    /// allocation length holds them).
    static func inquiry(_ cdb: [UInt8]) -> Outcome {
        let max = Int(cdb[4])
        guard cdb[1] & 1 != 0 else {
            let d: [UInt8] = [5, 0x80, 0, 0x21, 31, 0, 0, 0] + padded("QEMU", 8) + padded(model, 16) + padded(firmware, 4)
            return .reply(d, max: max)
        }
        var d: [UInt8] = [5, cdb[2], 0, 0]
        switch cdb[2] {
        case 0x00: d += [0x00, 0x83]
        case 0x83:
            guard max >= 28 else { return .error(key: illegalRequest, asc: dataPhaseError) }
            d += [2, 0, 0, 20] + padded(serial, 20)
            if max >= 100 { d += [2, 1, 0, 68] + padded("ATA", 8) + padded(model, 40) + padded(serial, 20) }
        default: return .error(key: illegalRequest, asc: invalidField)
        }
        d[3] = UInt8(d.count - 4)
        return .reply(d, max: max)
    }

    /// MODE SENSE(10), current values of the error recovery, audio control and capabilities
    /// pages. (QEMU's audio page leaves bytes 10-16, 18, 20 and 22 as its buffer held them:
    /// the packet's bytes 10 and 11, then what an earlier transfer left; here 0 past the packet.)
    static func modeSense(_ cdb: [UInt8], locked: Bool) -> Outcome {
        let max = Int(cdb[7]) << 8 | Int(cdb[8]), action = cdb[2] >> 6, page = cdb[2] & 0x3f
        guard action != 3 else { return .error(key: illegalRequest, asc: savingNotSupported) }
        let header: (UInt8) -> [UInt8] = { [0, $0 - 2, 0x70, 0, 0, 0, 0, 0] }
        switch (action, page) {
        case (0, 0x01): return .reply(header(16) + [0x01, 6, 0, 5, 0, 0, 0, 0], max: max)
        case (0, 0x0e): return .reply(header(24) + [0x0e, 14, cdb[10], cdb[11]] + [UInt8](repeating: 0, count: 12), max: max)
        case (0, 0x2a):
            let d: [UInt8] = [0x2a, 20, 0x3b, 0, 0x71, 0x60, 0x29 | (locked ? 2 : 0), 0, 0x02, 0xc0, 0, 2, 0x02, 0, 0x02, 0xc0, 0, 0, 0, 0, 0, 0]
            return .reply(header(30) + d, max: max)
        default: return .error(key: illegalRequest, asc: invalidField)
        }
    }
}
