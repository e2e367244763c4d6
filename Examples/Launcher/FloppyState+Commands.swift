/// The floppy controller's commands, as QEMU's `handlers` table and its `fdctrl_handle_*`
/// functions run them for drive A with no diskette and no drive B.
extension FloppyState {
    struct Command {
        enum Kind: Equatable {
            case transfer, transferDeleted, formatTrack, readID
            case specify, senseDriveStatus, recalibrate, senseInterrupt, seek
            case relativeSeekOut, relativeSeekIn
            case perpendicular, configure, powerDown, option, driveSpecification
            case lock, dumpRegisters, version, partID, save, restore
            case invalid
        }

        /// QEMU's table: a command byte is the first entry whose value it matches under
        /// the entry's mask (the high bits of a transfer are MT, MFM, SK), with the number
        /// of parameter bytes that follow it.
        static let table: [(value: UInt8, mask: UInt8, kind: Kind, parameters: UInt8)] = [
            (0x06, 0x1f, .transfer, 8), // READ DATA
            (0x05, 0x3f, .transfer, 8), // WRITE DATA
            (0x0f, 0xff, .seek, 2),
            (0x08, 0xff, .senseInterrupt, 0),
            (0x07, 0xff, .recalibrate, 1),
            (0x0d, 0xbf, .formatTrack, 5),
            (0x02, 0xbf, .transfer, 8), // READ TRACK
            (0x4e, 0xff, .restore, 17),
            (0x2e, 0xff, .save, 0),
            (0x0c, 0x1f, .transferDeleted, 8), // READ DELETED DATA
            (0x11, 0x1f, .transfer, 8), // SCAN EQUAL
            (0x16, 0x1f, .transfer, 8), // VERIFY
            (0x19, 0x1f, .transfer, 8), // SCAN LOW OR EQUAL
            (0x1d, 0x1f, .transfer, 8), // SCAN HIGH OR EQUAL
            (0x09, 0x3f, .transferDeleted, 8), // WRITE DELETED DATA
            (0x0a, 0xbf, .readID, 1),
            (0x03, 0xff, .specify, 2),
            (0x04, 0xff, .senseDriveStatus, 1),
            (0x12, 0xff, .perpendicular, 1),
            (0x13, 0xff, .configure, 3),
            (0x17, 0xff, .powerDown, 2),
            (0x33, 0xff, .option, 1),
            (0x8e, 0xff, .driveSpecification, 5),
            (0x8f, 0xff, .relativeSeekOut, 2),
            (0xcd, 0xff, .invalid, 10), // FORMAT AND WRITE: parameters taken, then refused
            (0xcf, 0xff, .relativeSeekIn, 2),
            (0x14, 0x7f, .lock, 0),
            (0x0e, 0xff, .dumpRegisters, 0),
            (0x10, 0xff, .version, 0),
            (0x18, 0xff, .partID, 0),
            (0x05, 0x1f, .transfer, 8), // WRITE DATA as BeOS 4.5 sends it
        ]

        private static let byByte: [(Kind, UInt8)] = (0...255).map { (b: Int) in
            let e = table.first { UInt8(b) & $0.mask == $0.value }
            return e.map { ($0.kind, $0.parameters) } ?? (.invalid, 0)
        }

        let kind: Kind
        /// The parameter bytes that follow the command byte.
        let parameters: UInt8

        init(_ byte: UInt8) { (kind, parameters) = Self.byByte[Int(byte)] }
    }

    /// A command whose parameters are all in the FIFO (`fifo[0]` the command byte).
    mutating func run(_ c: Command) {
        switch c.kind {
        case .transfer: startTransfer()
        case .transferDeleted:
            // QEMU moves no deleted data: an abnormal end, on the drive selected before.
            stopTransfer(Self.st0Abnormal | Self.st0Seek, 0)
        case .formatTrack:
            // Nothing is written (QEMU's TODO); the track's sector count is taken.
            current = fifo[1] & 1
            drives[currentUnit].lastSector = fifo[3]
            stopTransfer(0, 0)
        case .readID:
            // QEMU answers after 20 ms of its virtual clock; here at once, with what it
            // answers then: the next sector "spinning" by, and success (the data rate
            // matches the 0 an empty drive's medium rate is) or a missing address mark.
            let u = currentUnit
            drives[u].head = fifo[1] >> 2 & 1
            let d = drives[u]
            if d.lastSector != 0 { drives[u].sector = d.sector % d.lastSector &+ 1 }
            stopTransfer(dsr & 0x03 != 0 ? Self.st0Abnormal : 0, dsr & 0x03 != 0 ? 0x01 : 0)
        case .specify:
            timer0 = fifo[1] >> 4 & 0x0f
            timer1 = fifo[2] >> 1
            dor = fifo[2] & 1 != 0 ? dor & ~Self.dorDMA : dor | Self.dorDMA
            toCommandPhase()
        case .senseDriveStatus:
            current = fifo[1] & 1
            let u = currentUnit
            drives[u].head = fifo[1] >> 2 & 1
            let d = drives[u]
            // Write protected: the absent drive (QEMU's default until a drive is attached).
            fifo[0] = (u == 1 ? 0x40 : 0) | (d.track == 0 ? 0x10 : 0) | d.head << 2 | current | 0x28
            toResultPhase(1)
        case .recalibrate:
            current = fifo[1] & 1
            recalibrate(currentUnit)
            toCommandPhase()
            seekEnded()
        case .senseInterrupt: senseInterrupt()
        case .seek:
            current = fifo[1] & 1
            toCommandPhase()
            let d = drives[currentUnit]
            seek(currentUnit, head: d.head, track: fifo[2], sector: d.sector)
            seekEnded()
        case .relativeSeekOut, .relativeSeekIn:
            current = fifo[1] & 1
            let u = currentUnit, d = drives[u], steps = Int(fifo[2])
            var track: Int
            if c.kind == .relativeSeekOut {
                track = steps > Int(d.track) ? 0 : Int(d.track) - steps
            } else {
                let last = Int(Drive.maxTrack(u))
                track = steps + Int(d.track) >= last ? last - 1 : Int(d.track) + steps
            }
            seek(u, head: d.head, track: UInt8(truncatingIfNeeded: track), sector: d.sector)
            toCommandPhase()
            seekEnded()
        case .perpendicular:
            if fifo[1] & 0x80 != 0 { drives[currentUnit].perpendicular = fifo[1] & 0x07 }
            toCommandPhase()
        case .configure:
            (config, precompensation) = (fifo[2], fifo[3])
            toCommandPhase()
        case .powerDown:
            powerDown = fifo[1]
            fifo[0] = fifo[1]
            toResultPhase(1)
        case .option: toCommandPhase()
        case .driveSpecification:
            // Done at a parameter with bit 7 (bit 6: with a result); QEMU takes five and,
            // without it there, waits for ever: only a reset ends the command.
            let last = fifo[Int(position) - 1]
            guard last & 0x80 != 0 else { return }
            if last & 0x40 != 0 {
                fifo[0] = fifo[1]
                (fifo[2], fifo[3]) = (0, 0)
                toResultPhase(4)
            } else {
                toCommandPhase()
            }
        case .lock:
            lock = fifo[0] & 0x80 != 0 ? 1 : 0
            fifo[0] = lock << 4
            toResultPhase(1)
        case .dumpRegisters:
            let d = drives[currentUnit]
            let bytes: [UInt8] = [drives[unit(0)].track, drives[unit(1)].track, 0, 0, timer0,
                                  timer1 << 1 | (dor & Self.dorDMA != 0 ? 1 : 0), d.lastSector,
                                  lock << 7 | d.perpendicular << 2, config, precompensation]
            fifo.replaceSubrange(0..<bytes.count, with: bytes)
            toResultPhase(UInt8(bytes.count))
        case .version:
            fifo[0] = Self.version
            toResultPhase(1)
        case .partID:
            fifo[0] = 0x41 // stepping 1
            toResultPhase(1)
        case .save:
            let d = drives[currentUnit]
            let bytes: [UInt8] = [0, 0, drives[unit(0)].track, drives[unit(1)].track, 0, 0, timer0, timer1,
                                  d.lastSector, lock << 7 | d.perpendicular << 2, config, precompensation, powerDown, 0, 0]
            fifo.replaceSubrange(0..<bytes.count, with: bytes)
            toResultPhase(UInt8(bytes.count))
        case .restore:
            drives[unit(0)].track = fifo[3]
            drives[unit(1)].track = fifo[4]
            (timer0, timer1) = (fifo[7], fifo[8])
            drives[currentUnit].lastSector = fifo[9]
            lock = fifo[10] >> 7
            drives[currentUnit].perpendicular = fifo[10] >> 2 & 0x0f
            (config, precompensation, powerDown) = (fifo[11], fifo[12], fifo[13])
            toCommandPhase()
        case .invalid:
            fifo[0] = Self.st0Invalid
            toResultPhase(1)
        }
    }

    /// READ, WRITE, READ TRACK, VERIFY, SCAN (QEMU's `fdctrl_start_transfer`): the seek
    /// fails with no diskette, so the command ends at once, abnormally, the result naming
    /// the place asked for (no such sector also sets ST1's end of cylinder).
    private mutating func startTransfer() {
        current = fifo[1] & 1
        let (track, head, sector) = (fifo[2], fifo[3], fifo[4])
        let failure = seek(currentUnit, head: head, track: track, sector: sector)
        stopTransfer(Self.st0Abnormal, failure == .noSector ? 0x80 : 0)
        (fifo[3], fifo[4], fifo[5]) = (track, head, sector)
    }

    /// QEMU's `fdctrl_stop_transfer`: the seven result bytes (ST0 with the drive and
    /// head, ST1, ST2 0, the drive's track, head and sector, size code 2) and IRQ 6.
    private mutating func stopTransfer(_ st0: UInt8, _ st1: UInt8) {
        let d = drives[currentUnit]
        status0 = status0 & ~0x07 | current | (d.head != 0 ? 0x04 : 0) | st0
        let bytes: [UInt8] = [status0, st1, 0, d.track, d.head, d.sector, 2]
        fifo.replaceSubrange(0..<bytes.count, with: bytes)
        toResultPhase(UInt8(bytes.count))
        raiseInterrupt()
    }

    /// A seek's end (RECALIBRATE, SEEK, the relative seeks): ST0's seek end and IRQ 6.
    private mutating func seekEnded() {
        status0 |= Self.st0Seek
        raiseInterrupt()
    }

    /// SENSE INTERRUPT STATUS: after a reset the four drive positions' "ready changed"
    /// (0xc0-0xc3), else the interrupt's ST0 with the selected drive; each with the
    /// selected drive's track. No interrupt pending: invalid (0x80), one byte.
    private mutating func senseInterrupt() {
        if resetSenses > 0 {
            fifo[0] = Self.st0ReadyChanged + Self.resetSenseCount - resetSenses
            resetSenses -= 1
        } else if !interruptPending {
            fifo[0] = Self.st0Invalid
            return toResultPhase(1)
        } else {
            fifo[0] = status0 & ~0x07 | current
        }
        fifo[1] = drives[currentUnit].track
        toResultPhase(2)
        lowerInterrupt()
        status0 = Self.st0ReadyChanged
    }
}
