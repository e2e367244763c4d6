/// The floppy controller's line in the `launcher-devices` blob: `floppy`, then in hex SRA,
/// SRB, DOR, the selected drive, TDR, DSR, MSR, ST0, the phase (1 command, 2 execution,
/// 3 result), the FIFO position and length, the sense interrupts owed after a reset, the
/// two timers, precompensation, CONFIGURE's byte, the lock, POWERDOWN's byte; then the
/// 18 FIFO bytes and each drive's head, track, sector, perpendicular mode and sectors a
/// track, in hex digits (Docs/SnapshotFormat.md). Written only when the controller is not
/// as after power-on; a blob without the line (so also one written before the controller
/// was modelled) restores it as after power-on.
extension FloppyState {
    static let blobWords = 21
    static let byteNames = ["sra", "srb", "dor", "drive", "tdr", "dsr", "msr", "st0", "phase", "position", "length",
                            "reset senses", "timer0", "timer1", "precompensation", "config", "lock", "powerdown"]

    func blobLine() -> String {
        let bytes = [sra, srb, dor, current, tdr, dsr, msr, status0, phase.rawValue, position, length,
                     resetSenses, timer0, timer1, precompensation, config, lock, powerDown]
        let heads = drives.flatMap { [$0.head, $0.track, $0.sector, $0.perpendicular, $0.lastSector] }
        return (["floppy"] + bytes.map { hex($0) } + [BuiltInDeviceState.hexDigits(fifo), BuiltInDeviceState.hexDigits(heads)])
            .joined(separator: " ")
    }

    /// `words` (the line split at spaces, `floppy` first, `blobWords` of them), every value checked.
    static func decode(_ words: [Substring], _ bad: (String) -> LauncherError) throws(LauncherError) -> FloppyState {
        var b: [UInt8] = []
        for (i, name) in byteNames.enumerated() {
            guard let v = BuiltInDeviceState.hexValue(words[1 + i], UInt8.self) else {
                throw bad("floppy \(name) \(String(words[1 + i]).quotedForMessage)")
            }
            b.append(v)
        }
        var s = FloppyState()
        guard let phase = Phase(rawValue: b[8]) else { throw bad("floppy phase \(hex(b[8])) (1 to 3)") }
        (s.sra, s.srb, s.dor, s.current, s.tdr, s.dsr, s.msr, s.status0, s.phase) = (b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], phase)
        (s.position, s.length, s.resetSenses, s.timer0, s.timer1, s.precompensation) = (b[9], b[10], b[11], b[12], b[13], b[14])
        (s.config, s.lock, s.powerDown) = (b[15], b[16], b[17])
        s.fifo = try BuiltInDeviceState.bytes(hexDigits: words[19], count: fifoSize, "floppy fifo", bad)
        let heads = try BuiltInDeviceState.bytes(hexDigits: words[20], count: 10, "floppy drives", bad)
        s.drives = [0, 5].map { Drive(head: heads[$0], track: heads[$0 + 1], sector: heads[$0 + 2], perpendicular: heads[$0 + 3],
                                      lastSector: heads[$0 + 4]) }
        if let why = refusal(s) { throw bad("floppy: \(why)") }
        return s
    }

    /// Why `s` is no state the controller reaches, or nil.
    static func refusal(_ s: FloppyState) -> String? {
        if s.sra & ~sraPending != sraNoDrive2 { return "sra \(hex(s.sra)) (0x40, and the interrupt's 0x80)" }
        if s.srb & ~0x23 != 0xc0 { return "srb \(hex(s.srb)) (0xc0 and the motor and drive bits 0x23)" }
        if s.current > 1 { return "drive \(hex(s.current)) (0 or 1)" }
        if s.tdr & ~0x04 != 0 { return "tdr \(hex(s.tdr)) (only the boot select, 0x04)" }
        if s.resetSenses > resetSenseCount { return "reset senses \(s.resetSenses) (at most \(resetSenseCount))" }
        if s.lock > 1 { return "lock \(hex(s.lock)) (0 or 1)" }
        if let d = s.drives.first(where: { $0.head > 1 || $0.perpendicular > 0x0f }) {
            return "a drive's head \(hex(d.head)) or perpendicular mode \(hex(d.perpendicular)) (head 0 or 1, mode at most 0x0f)"
        }
        let phaseBits = s.msr & (msrRQM | msrDIO | msrBusy)
        guard s.msr == phaseBits else { return "msr \(hex(s.msr)) (only RQM, DIO and busy, 0xd0)" }
        let fits: Bool
        switch s.phase {
        case .command: fits = s.msr & (msrRQM | msrDIO) == msrRQM && s.position < s.length && Int(s.length) <= fifoSize
        case .execution: fits = s.msr == msrBusy && s.position == s.length && Int(s.length) <= fifoSize
        case .result: fits = s.msr == phaseBits && phaseBits == msrRQM | msrDIO | msrBusy && s.position < s.length && s.length <= 15
        }
        guard fits else {
            return "phase \(s.phase.rawValue) with msr \(hex(s.msr)), fifo position \(s.position) of \(s.length) (a command takes at most \(fifoSize) bytes, a result 15)"
        }
        return nil
    }
}
