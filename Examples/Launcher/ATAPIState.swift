/// The empty CD-ROM drive's state (`ATAPIDrive`): everything a snapshot keeps of it
/// (`BuiltInDeviceState`'s `atapi` line). A value; the drive guards it with its lock.
///
/// The task file is an `ATAState`'s registers (only those: its disk transfer, buffer and
/// block fields stay as after a reset), with the absent slave's copy; the ATAPI part is
/// QEMU's `IDEState` for a drive with no medium: the sense the last failed command left,
/// the tray, and the PIO transfer in flight (the 12-byte command packet the guest is
/// writing, the 512 bytes of IDENTIFY PACKET DEVICE, or a command's reply).
struct ATAPIState: Equatable {
    enum Phase: UInt8 {
        /// No transfer: DRQ clear, the data port moves nothing.
        case none = 0
        /// PACKET's 12 command bytes, guest to drive.
        case packet = 1
        /// IDENTIFY PACKET DEVICE's 512 bytes, drive to guest.
        case identify = 2
        /// A command's reply, drive to guest, in DRQ blocks of at most the byte count limit.
        case reply = 3
    }

    var t = ATAPIState.resetTaskFile()
    /// REQUEST SENSE's sense key and additional sense code, as the last failed packet
    /// command left them (QEMU clears them only at a reset, or a UNIT ATTENTION at
    /// REQUEST SENSE, which an empty drive never reports).
    var senseKey: UInt8 = 0, asc: UInt8 = 0
    /// START STOP UNIT's tray and PREVENT ALLOW MEDIUM REMOVAL's lock (GET EVENT STATUS
    /// NOTIFICATION reports the tray, MODE SENSE's capabilities page the lock).
    var trayOpen = false, trayLocked = false
    var phase = Phase.none
    /// The bytes of the transfer in flight: 12 (packet), 512 (identify) or the reply
    /// (1 to `maxReply`, cut to the command's allocation length); empty with none.
    var buffer: [UInt8] = []
    /// The next byte the data port moves, and the end of the DRQ block in flight (a
    /// reply's blocks follow each other through `buffer`).
    var position = 0, chunkEnd = 0

    /// The longest reply the drive gives (GET CONFIGURATION's answer is cut to 512).
    static let maxReply = 512
    static let packetSize = 12, identifySize = 512
    /// The (sense key, additional sense code) pairs the drive ever reports: none, NOT
    /// READY / MEDIUM NOT PRESENT, and ILLEGAL REQUEST with an invalid opcode, an invalid
    /// field in the packet, saving parameters not supported, a data phase error or a
    /// medium removal prevented.
    static let senses: [(UInt8, UInt8)] = [(0, 0), (2, 0x3a), (5, 0x20), (5, 0x24), (5, 0x39), (5, 0x4b), (5, 0x53)]

    /// QEMU's `ide_reset` of a CD drive: status 0x50, error 0, the ATAPI signature (count
    /// 1, LBA low 1, LBA mid 0x14, LBA high 0xeb), select 0xa0.
    static func resetTaskFile() -> ATAState {
        var t = ATAState()
        setSignature(&t)
        return t
    }

    /// QEMU's `ide_set_signature` for a CD: the packet device's signature, the head bits cleared.
    static func setSignature(_ t: inout ATAState) {
        (t.count, t.lbaLow, t.lbaMid, t.lbaHigh) = (1, 1, 0x14, 0xeb)
        t.select &= 0xf0
    }

    /// As after QEMU's `ide_reset` of the drive (a DEVICE RESET, or SRST): the task file,
    /// the sense, the tray and any transfer; `control`, the line and the absent slave's
    /// copy are the bus's, kept.
    mutating func reset() {
        let (control, line, slave) = (t.control, t.line, t.slave)
        self = ATAPIState()
        (t.control, t.line, t.slave) = (control, line, slave)
    }
}

/// The line `atapi STATUS ERROR FEATURE COUNT LBA-LOW LBA-MID LBA-HIGH HOB-FEATURE
/// HOB-COUNT HOB-LBA-LOW HOB-LBA-MID HOB-LBA-HIGH SELECT CONTROL LINE` then the absent
/// slave's nine (`SLAVE-COUNT` ... `SLAVE-SELECT`, as the `ata` line's), `SENSE-KEY ASC
/// TRAY PHASE POSITION CHUNK-END BUFFER`: numbers `0x` hex, LINE 0 or 1, TRAY bit 0 open
/// and bit 1 locked, PHASE 0-3 (none, packet, identify, reply), BUFFER the transfer's
/// bytes in hex or `-` with none (Docs/SnapshotFormat.md), written only when the drive
/// is not as after power-on. A blob without the line (so also one written before the drive
/// was modelled) restores it as after a reset.
extension ATAPIState {
    static let blobWords = 32

    func blobLine() -> String {
        let v = t.slave
        let bytes = [t.status, t.error, t.feature, t.count, t.lbaLow, t.lbaMid, t.lbaHigh, t.hobFeature, t.hobCount, t.hobLow, t.hobMid, t.hobHigh,
                     t.select, t.control]
        let slave = [v.count, v.lbaLow, v.lbaMid, v.lbaHigh, v.hobCount, v.hobLow, v.hobMid, v.hobHigh, v.select]
        let tray = (trayOpen ? 1 : 0) | (trayLocked ? 2 : 0)
        return (["atapi"] + bytes.map { hex($0) } + ["\(t.line ? 1 : 0)"] + slave.map { hex($0) }
                + [hex(senseKey), hex(asc), "\(tray)", "\(phase.rawValue)", hex(UInt16(position)), hex(UInt16(chunkEnd)),
                   buffer.isEmpty ? "-" : BuiltInDeviceState.hexDigits(buffer)]).joined(separator: " ")
    }

    /// `words` (the line split at spaces, `atapi` first, `blobWords` of them), every value checked.
    static func decode(_ words: [Substring], _ bad: (String) -> LauncherError) throws(LauncherError) -> ATAPIState {
        func value<T: FixedWidthInteger & UnsignedInteger>(_ i: Int, _ what: String, _: T.Type) throws(LauncherError) -> T {
            guard let v = BuiltInDeviceState.hexValue(words[i], T.self) else { throw bad("atapi \(what) \(String(words[i]).quotedForMessage)") }
            return v
        }
        func digit(_ i: Int, _ what: String, max: UInt8) throws(LauncherError) -> UInt8 {
            guard let v = UInt8(plainDecimal: words[i]), v <= max else { throw bad("atapi \(what) \(String(words[i]).quotedForMessage) (0 to \(max))") }
            return v
        }
        let names = ["status", "error", "feature", "count", "lba low", "lba mid", "lba high", "hob feature", "hob count", "hob lba low",
                     "hob lba mid", "hob lba high", "select", "control"]
        var b: [UInt8] = []
        for (i, name) in names.enumerated() { b.append(try value(1 + i, name, UInt8.self)) }
        var s = ATAPIState()
        (s.t.status, s.t.error, s.t.feature, s.t.count, s.t.lbaLow, s.t.lbaMid, s.t.lbaHigh) = (b[0], b[1], b[2], b[3], b[4], b[5], b[6])
        (s.t.hobFeature, s.t.hobCount, s.t.hobLow, s.t.hobMid, s.t.hobHigh, s.t.select, s.t.control) = (b[7], b[8], b[9], b[10], b[11], b[12], b[13])
        s.t.line = try digit(15, "line", max: 1) == 1
        let slaveNames = ["count", "lba low", "lba mid", "lba high", "hob count", "hob lba low", "hob lba mid", "hob lba high", "select"]
        var v: [UInt8] = []
        for (i, name) in slaveNames.enumerated() { v.append(try value(16 + i, "slave \(name)", UInt8.self)) }
        s.t.slave = ATAState.SlaveRegisters(count: v[0], lbaLow: v[1], lbaMid: v[2], lbaHigh: v[3], hobCount: v[4], hobLow: v[5], hobMid: v[6],
                                            hobHigh: v[7], select: v[8])
        // The drive only ever shows DRDY, DSC, DRQ and ERR, or 0 after a diagnostic.
        guard s.t.status & ~0x59 == 0 else { throw bad("atapi status \(hex(s.t.status)) (bits other than 0x59)") }
        guard s.t.select & 0xa0 == 0xa0, s.t.slave.select & 0xa0 == 0xa0 else {
            throw bad("atapi select \(hex(s.t.select)) or slave select \(hex(s.t.slave.select)) (bits 5 and 7 always set)")
        }
        s.senseKey = try value(25, "sense key", UInt8.self)
        s.asc = try value(26, "asc", UInt8.self)
        guard senses.contains(where: { $0 == (s.senseKey, s.asc) }) else {
            throw bad("atapi sense key \(hex(s.senseKey)) asc \(hex(s.asc)) (not a sense the drive reports)")
        }
        let tray = try digit(27, "tray", max: 3)
        (s.trayOpen, s.trayLocked) = (tray & 1 != 0, tray & 2 != 0)
        guard let phase = Phase(rawValue: try digit(28, "phase", max: 3)) else { throw bad("atapi phase") }
        s.phase = phase
        let position = Int(try value(29, "position", UInt16.self)), chunkEnd = Int(try value(30, "chunk end", UInt16.self))
        let text = words[31], digits = text.utf8.count
        if text == "-" {
            guard phase == .none else { throw bad("atapi buffer '-' with phase \(phase.rawValue) (a transfer in flight has its bytes)") }
        } else {
            let sizes = [Phase.none: 0...0, .packet: packetSize...packetSize, .identify: identifySize...identifySize, .reply: 1...maxReply][phase]!
            guard phase != .none, digits % 2 == 0, sizes.contains(digits / 2) else {
                throw bad("atapi buffer of \(digits) hex digits with phase \(phase.rawValue) (12 bytes for a packet, 512 for identify, 1 to 512 for a reply, '-' with none)")
            }
            s.buffer = try BuiltInDeviceState.bytes(hexDigits: text, count: digits / 2, "atapi buffer", bad)
        }
        // DRQ (status 0x58) exactly while a transfer waits on the data port, which moves 2 or
        // 4 bytes at a time inside the block; a packet's and identify's block is all of it.
        guard (phase == .none) == (s.t.status & ATAState.drq == 0), phase == .none || s.t.status == 0x58 else {
            throw bad("atapi status \(hex(s.t.status)) with phase \(phase.rawValue) (0x58 exactly during a transfer)")
        }
        let whole = phase == .packet || phase == .identify
        guard position % 2 == 0, position <= chunkEnd, chunkEnd <= s.buffer.count, phase == .none || position < chunkEnd || phase == .reply,
              !whole || chunkEnd == s.buffer.count, phase != .none || chunkEnd == 0 else {
            throw bad("atapi position \(hex(UInt16(position))) chunk end \(hex(UInt16(chunkEnd))) in \(s.buffer.count) bytes (even, inside the block in flight, 0 with none)")
        }
        (s.position, s.chunkEnd) = (position, chunkEnd)
        return s
    }
}
