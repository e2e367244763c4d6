/// The floppy controller's state (`FloppyController`): QEMU's ISA floppy controller, an
/// Intel 82078 as hw/block/fdc.c models it, as QEMU's `pc` has it without `-fda`: drive
/// A there with no diskette (a 2.88 MB drive, the CMOS's 0x10 = 0x50), drive B absent.
/// A value: the registers, the command FIFO and its phase, the drives' heads; the
/// controller guards it with its lock, and a snapshot keeps it (`floppy` in
/// `BuiltInDeviceState`). Its registers' reads and writes are QEMU's `fdctrl_read` and
/// `fdctrl_write`; the commands are in `FloppyState+Commands.swift`.
///
/// With no diskette nothing is ever transferred: a read, write, verify or scan ends at
/// once, as QEMU's `fd_seek` makes it, with abnormal termination in the result's ST0, so
/// neither DMA nor a non-DMA data phase is ever started. The interrupt line (IRQ 6) is
/// `interruptPending` (SRA bit 7), which the controller drives.
struct FloppyState: Equatable {
    /// A drive's place and what the controller was told of its diskette (QEMU's `FDrive`).
    struct Drive: Equatable {
        var head: UInt8 = 0, track: UInt8 = 0, sector: UInt8 = 0
        /// PERPENDICULAR MODE's (3 bits) or RESTORE's (4 bits) value, which DUMPREG reports.
        var perpendicular: UInt8 = 0
        /// Sectors a track: 0xff for drive A, whose empty bounds QEMU widens so that it can
        /// seek (`fd_empty_seek_hack`), 0 for the absent B; FORMAT TRACK and RESTORE set it.
        var lastSector: UInt8

        /// The last track there is (QEMU's `max_track`, fixed for a drive with no diskette).
        static func maxTrack(_ unit: Int) -> UInt8 { unit == 0 ? 0xff : 0 }
    }

    enum Phase: UInt8 {
        /// The guest writes a command and its parameters.
        case command = 1
        /// A command runs: here only DRIVE SPECIFICATION without its last byte's bit 7,
        /// where QEMU's controller stays until a reset.
        case execution = 2
        /// The guest reads the result bytes.
        case result = 3
    }

    static let msrRQM: UInt8 = 0x80, msrDIO: UInt8 = 0x40, msrBusy: UInt8 = 0x10
    static let dorReset: UInt8 = 0x04, dorDMA: UInt8 = 0x08
    static let sraPending: UInt8 = 0x80, sraNoDrive2: UInt8 = 0x40
    static let dsrPowerDown: UInt8 = 0x40, dsrSoftwareReset: UInt8 = 0x80
    static let st0Seek: UInt8 = 0x20, st0Abnormal: UInt8 = 0x40, st0Invalid: UInt8 = 0x80, st0ReadyChanged: UInt8 = 0xc0
    /// The longest command (RESTORE, 17 parameters) and result (SAVE, 15 bytes) fit.
    static let fifoSize = 18
    /// Sense interrupts owed after a reset, one a drive position (QEMU's FD_RESET_SENSEI_COUNT).
    static let resetSenseCount: UInt8 = 4
    /// VERSION's answer: an 82078.
    static let version: UInt8 = 0x90

    /// Status register A: no second drive (bit 6), the interrupt pending (bit 7).
    var sra: UInt8 = sraNoDrive2
    /// Status register B: bits 6-7 always set; the motors' and drive select's copies.
    var srb: UInt8 = 0xc0
    /// The digital output register as written (reset, DMA, motors; bit 0 `current`).
    var dor: UInt8 = dorReset | dorDMA
    /// The selected drive (0 or 1; the DOR's bit 0, or a command's unit).
    var current: UInt8 = 0
    /// Tape drive register: only the boot select bit (2), which swaps drives 0 and 1.
    var tdr: UInt8 = 0
    /// Data rate select: the rate (bits 0-1), power down (6).
    var dsr: UInt8 = 0
    /// Main status: RQM, DIO, command busy.
    var msr: UInt8 = msrRQM
    /// The interrupt's ST0, as SENSE INTERRUPT STATUS and a result report it.
    var status0: UInt8 = 0
    var fifo = [UInt8](repeating: 0, count: fifoSize)
    /// The next FIFO byte, and how many the phase moves.
    var position: UInt8 = 0, length: UInt8 = 1
    var phase = Phase.command
    /// SENSE INTERRUPT STATUS answers still owed after a reset (0-4).
    var resetSenses: UInt8 = 0
    /// SPECIFY's step rate and head unload (`timer0`) and head load (`timer1`), CONFIGURE's
    /// and RESTORE's, kept only to be reported (DUMPREG, SAVE).
    var timer0: UInt8 = 0, timer1: UInt8 = 0, precompensation: UInt8 = 0
    /// Implied seeks, FIFO off (QEMU's initial CONFIGURE), LOCK, POWERDOWN MODE.
    var config: UInt8 = 0x60, lock: UInt8 = 0, powerDown: UInt8 = 0
    /// Drive A (empty) and B (absent), by unit (`drive(_:)` applies the boot select);
    /// after the machine's reset, which recalibrated both: A at sector 1 of track 0.
    var drives = [Drive(sector: 1, lastSector: 0xff), Drive(lastSector: 0)]

    /// Set when an access lowered the line, which the controller then drives low before
    /// raising it again if the same access raised it (a reset with an interrupt pending):
    /// an edge-triggered pin sees the new one. Cleared after every access, so never saved.
    var lineDropped = false

    /// The interrupt line's level (IRQ 6).
    var interruptPending: Bool { sra & Self.sraPending != 0 }

    // MARK: Registers (QEMU registers 0x3f1-0x3f5 and 0x3f7; 0x3f0 is unassigned)

    /// The byte a read of register `r` (the port's low 3 bits) gives.
    mutating func read(register r: UInt16) -> UInt8 {
        switch r {
        case 0: return sra
        case 1: return srb
        case 2: return dor | current
        case 3: return tdr
        case 4:
            // Reading the main status ends power down and reset, without resetting (QEMU's).
            dsr &= ~Self.dsrPowerDown
            dor |= Self.dorReset
            return msr
        case 5: return readData()
        case 7: return 0x80 // the disk change line: neither drive ever held a diskette
        default: return 0xff
        }
    }

    /// A write of `v` to register `r`. While the DOR holds the controller in reset, only
    /// the DOR is written.
    mutating func write(register r: UInt16, _ v: UInt8) {
        let inReset = dor & Self.dorReset == 0
        switch r {
        case 2:
            srb = srb & ~0x23 | (v & 0x10 != 0 ? 0x01 : 0) | (v & 0x20 != 0 ? 0x02 : 0) | (v & 0x01 != 0 ? 0x20 : 0)
            if v & Self.dorReset != 0, inReset {
                reset(interrupt: true)
                dsr &= ~Self.dsrPowerDown
            }
            current = v & 1
            dor = v
        case 3 where !inReset: tdr = v & 0x04
        case 4 where !inReset:
            if v & Self.dsrSoftwareReset != 0 {
                dor &= ~Self.dorReset
                reset(interrupt: true)
                dor |= Self.dorReset
            }
            if v & Self.dsrPowerDown != 0 { reset(interrupt: true) }
            dsr = v
        case 5 where !inReset: writeData(v)
        case 7 where !inReset: dsr = dsr & ~0x03 | v & 0x03 // the configuration control register: the rate
        default: break
        }
    }

    /// QEMU's `fdctrl_reset`: the registers, the FIFO, both drives back to track 0; from
    /// the DOR or the DSR (`interrupt`) with IRQ 6 and four sense interrupts owed, one
    /// for each drive position (ST0 0xc0-0xc3).
    mutating func reset(interrupt: Bool) {
        lowerInterrupt()
        sra = Self.sraNoDrive2
        srb = 0xc0
        current = 0
        dor = Self.dorReset | Self.dorDMA
        msr = Self.msrRQM
        resetSenses = 0
        for unit in drives.indices { recalibrate(unit) }
        toCommandPhase()
        if interrupt {
            status0 |= Self.st0ReadyChanged
            raiseInterrupt()
            resetSenses = Self.resetSenseCount
        }
    }

    // MARK: The FIFO (port 0x3f5)

    private mutating func readData() -> UInt8 {
        dsr &= ~Self.dsrPowerDown
        // Only a result is ever read: there is no data phase without a diskette.
        guard msr & Self.msrRQM != 0, msr & Self.msrDIO != 0, phase == .result,
              position < length, Int(position) < fifo.count else { return 0 }
        let value = fifo[Int(position)]
        position += 1
        if position == length {
            toCommandPhase()
            lowerInterrupt()
        }
        return value
    }

    private mutating func writeData(_ value: UInt8) {
        guard msr & Self.msrRQM != 0, msr & Self.msrDIO == 0, phase == .command,
              position < length, Int(position) < fifo.count else { return }
        dsr &= ~Self.dsrPowerDown
        let at = Int(position)
        fifo[at] = value
        position += 1
        if position == length { msr &= ~Self.msrRQM }
        if at == 0 {
            let parameters = Command(value).parameters
            length = parameters + 1
            if parameters > 0 { msr |= Self.msrRQM }
            msr |= Self.msrBusy
        }
        if position == length {
            phase = .execution
            run(Command(fifo[0]))
        }
    }

    // MARK: Phases and the interrupt

    mutating func toCommandPhase() {
        phase = .command
        (position, length) = (0, 1)
        msr = msr & ~(Self.msrBusy | Self.msrDIO) | Self.msrRQM
    }

    mutating func toResultPhase(_ count: UInt8) {
        phase = .result
        (position, length) = (0, count)
        msr |= Self.msrBusy | Self.msrRQM | Self.msrDIO
    }

    mutating func raiseInterrupt() {
        sra |= Self.sraPending
        resetSenses = 0
    }

    mutating func lowerInterrupt() {
        status0 = 0
        if interruptPending { lineDropped = true }
        sra &= ~Self.sraPending
    }

    // MARK: Drives

    /// The drive a unit number names, through the boot select (QEMU's `get_drv`).
    func unit(_ n: UInt8) -> Int {
        let swapped = tdr & 0x04 != 0
        return n & 1 == 0 ? (swapped ? 1 : 0) : (swapped ? 0 : 1)
    }

    var currentUnit: Int { unit(current) }

    enum SeekFailure { case noTrack, noSector, noDiskette }

    /// QEMU's `fd_seek` for a drive with no diskette: moves the head when the place is
    /// within the drive's bounds (single-sided: head 0 only), and always fails, how says
    /// what a transfer's result reports.
    @discardableResult
    mutating func seek(_ u: Int, head: UInt8, track: UInt8, sector: UInt8) -> SeekFailure {
        var d = drives[u]
        guard track <= Drive.maxTrack(u), head == 0 else { return .noTrack }
        guard sector <= d.lastSector else { return .noSector }
        func index(_ h: UInt8, _ t: UInt8, _ s: UInt8) -> Int { (Int(t) + Int(h)) * Int(d.lastSector) + Int(s) - 1 }
        if index(head, track, sector) != index(d.head, d.track, d.sector) {
            (d.head, d.track, d.sector) = (head, track, sector)
            drives[u] = d
        }
        return .noDiskette
    }

    mutating func recalibrate(_ u: Int) { seek(u, head: 0, track: 0, sector: 1) }
}
