import VMMKit

/// The state of the devices the launcher adds to a machine itself (fw_cfg, the reset
/// control, System Control Port A, the i8042, the built-in COM1, ACPI's PM1a blocks and PM
/// timer, the VGA registers, the RTC, the ATA disk, the CD-ROM drive, the floppy controller, LPT1, the ISA DMA controllers, the HPET), saved in a snapshot as the device blob
/// `launcher-devices` (version 1; Docs/SnapshotFormat.md) and put back by `vmm restore`
/// before any vCPU runs. Without it a guest stopped between selecting a fw_cfg item and
/// reading it read zeros after the restore, and the i8042 lost the replies the guest had
/// not read. Text lines `device value...`, last line `end`; a device the machine does
/// not have is absent. Pure values: `decode` is fuzzed (fuzz-launcher-state).
struct BuiltInDeviceState: Equatable {
    static let blobName = "launcher-devices"
    static let version: UInt32 = 1
    /// The widest state of every device takes 21,134 bytes, 16,384 of them the ATA disk's
    /// block of 16 sectors in flight (BuiltInDeviceStateTests.largestFits); the 16 KiB
    /// this was before READ/WRITE MULTIPLE left such a snapshot unrestorable.
    static let maxSize = 32768

    struct FwCfgRegisters: Equatable {
        /// The selected item (nil: none selected, or one fw_cfg does not have).
        var selector: UInt16?
        /// The next byte of the item to read; at most its size.
        var offset: Int
        /// The DMA address register's high half, written and not yet followed by the low
        /// half that starts a transfer (0 at reset and after every transfer).
        var dmaHigh: UInt32 = 0
    }

    struct I8042Registers: Equatable {
        /// The status register's stored bits (system flag, command last, not inhibited);
        /// "output full" is whether `replies` is empty.
        var status: UInt8
        var config: UInt8
        var outputPort: UInt8
        /// The command waiting for its data byte (0 for none).
        var awaiting: UInt8
        var lastRead: UInt8
        var replies: [UInt8]
        /// Which replies are the mouse's (bit 0: the first); written as "m0x..".
        var auxReplies: UInt16 = 0
        /// The keyboard behind it (line `ps2-keyboard`); a blob written before it was
        /// modelled has none: set 2, scanning, nothing typed.
        var keyboard = PS2Keyboard()
        /// The mouse behind it (line `ps2-mouse`, written when it is not as after a reset);
        /// a blob without the line restores it as after a reset.
        var mouse = PS2Mouse()
    }

    struct RTCRegisters: Equatable {
        /// The last byte written to port 0x70 (NMI mask bit included).
        var index: UInt8
        /// Seconds the guest's clock runs ahead of the host's (at most `RTC.maxOffset` either way).
        var offset: Int64
        /// The 128 bytes of CMOS memory.
        var ram: [UInt8]
    }

    var fwCfg: FwCfgRegisters?
    var resetControl: UInt8?
    /// Port 0x92 (`SystemControlPortA`), bit 0 never set.
    var systemControlA: UInt8?
    var i8042: I8042Registers?
    var consoleLCR: UInt8?
    /// ACPI's PM1a control register (port 0x604), without SLP_EN.
    var pm1Control: UInt16?
    /// ACPI's PM1a status and enable registers (ports 0x600, 0x602), with `pm1Control`; a
    /// blob written before they were modelled has no line for them: both then read 0.
    var pm1Events: PM1Events?
    /// ACPI's PM timer (port 0x608): its 24-bit count when the snapshot was taken; a blob
    /// written before it was modelled has none (the restored timer counts from 0).
    var pmTimer: UInt32?
    /// The VGA's registers (`VGARegisters`); a blob written before they were modelled has
    /// none (they restore as mode 3 set them).
    var vga: VGARegisters.Registers?
    var rtc: RTCRegisters?
    /// The ATA disk (`--hda`, `ATADisk`): its registers, the sector in flight, its size.
    var ata: ATAState.Saved?
    /// The Bochs VBE display (`--vga std`, `BochsDisplay`): its index and registers (the
    /// framebuffer is guest memory, in the snapshot's `vga-vram` region).
    var bochs: BochsDisplay.Registers?
    /// The VGA's DAC (`VGADAC`), only when it is not as after a reset (all black).
    var dac: VGADAC.Registers?
    /// The HPET (`HPET`), only when it is not as after a reset.
    var hpet: HPETState?
    /// The empty CD-ROM drive (`ATAPIDrive`), only when it is not as after power-on (and
    /// blobs from before it was built in have none).
    var atapi: ATAPIState?
    /// The floppy controller (`FloppyController`), only when it is not as after power-on
    /// (and blobs from before it was built in have none).
    var floppy: FloppyState?
    /// LPT1 (`ParallelPort`), only when it is not as after a reset.
    var parallel: ParallelPort.Registers?
    /// The ISA DMA controllers (`ISADMA`), only when not as after a reset.
    var dma: ISADMA.Registers?

    struct PM1Events: Equatable {
        var status: UInt16
        var enable: UInt16
    }

    static let i8042StatusBits: UInt8 = 0x1c
    /// The guest's clock may be set at most this far from the host's (±200 years).
    static let rtcMaxOffset: Int64 = 200 * 366 * 86_400
    /// Register C's flags a snapshot keeps in CMOS byte 0x0c: update ended, alarm, periodic.
    static let rtcKeptFlags: UInt8 = 0x70
    /// Bit 7 of the kept byte 0x0c: the interrupt output was raised and register C not read
    /// since (as IRQF, which register B's enables and the kept flags imply, so only with
    /// one of them). A restore takes the level without raising it again (`RTC.restore`).
    static let rtcRaised: UInt8 = 0x80
    static let i8042Commands: [UInt8] = [0, 0x60, 0xd1, 0xd2, 0xd3, 0xd4]

    func encoded() -> [UInt8] {
        var lines: [String] = []
        if let f = fwCfg { lines.append("fw_cfg \(f.selector.map { hex($0) } ?? "none") \(f.offset)" + (f.dmaHigh == 0 ? "" : " \(hex(f.dmaHigh))")) }
        if let r = resetControl { lines.append("reset-control \(hex(r))") }
        if let a = systemControlA { lines.append("port92 \(hex(a))") }
        if let k = i8042 {
            let queued = k.replies.isEmpty ? "-" : k.replies.enumerated()
                .map { (k.auxReplies >> $0.offset) & 1 != 0 ? "m" + hex($0.element) : hex($0.element) }.joined(separator: ",")
            lines.append("i8042 \([k.status, k.config, k.outputPort, k.awaiting, k.lastRead].map { hex($0) }.joined(separator: " ")) \(queued)")
            let kb = k.keyboard
            lines.append("ps2-keyboard \(kb.set) \(kb.scanning ? 1 : 0) \(hex(kb.awaiting)) \(kb.typed.isEmpty ? "-" : Self.hexDigits(kb.typed))")
            let m = k.mouse
            if m != PS2Mouse() {
                lines.append("ps2-mouse " + [m.status, m.resolution, m.sampleRate, m.wrap ? 1 : 0, m.type, m.detect, m.awaiting].map { hex($0) }.joined(separator: " ")
                             + " \(m.dx) \(m.dy) \(m.dz) \(hex(m.buttons)) \(m.owed ? 1 : 0)")
            }
        }
        if let lcr = consoleLCR { lines.append("console \(hex(lcr))") }
        if let pm = pm1Control { lines.append("pm1-control \(hex(pm))") }
        if let e = pm1Events { lines.append("pm1-events \(hex(e.status)) \(hex(e.enable))") }
        if let t = pmTimer { lines.append("pm-timer \(hex(t))") }
        if let v = vga {
            lines.append("vga \(hex(v.misc)) \(hex(v.index)) \(hex(v.status)) \(Self.hexDigits(v.crtc))")
            if v.controllers != VGAControllers() { lines.append(v.controllers.blobLine()) }
        }
        if let r = rtc { lines.append("rtc \(hex(r.index)) \(r.offset) \(Self.hexDigits(r.ram))") }
        if let a = ata { lines.append(ATAState.blobLine(a)) }
        if let b = bochs { lines.append((["bochs", hex(b.index)] + b.regs.map { hex($0) }).joined(separator: " ")) }
        if let d = dac {
            lines.append("vga-dac \([d.writeIndex, d.readIndex, d.sub, d.state].map { hex($0) }.joined(separator: " ")) \(Self.hexDigits(d.cache)) \(Self.hexDigits(d.palette))")
        }
        if let h = hpet { lines.append(h.blobLine()) }
        if let c = atapi { lines.append(c.blobLine()) }
        if let f = floppy { lines.append(f.blobLine()) }
        if let p = parallel { lines.append(ParallelPort.blobLine(p)) }
        if let d = dma { lines.append(ISADMA.blobLine(d)) }
        return TextBlob.encode(header: "vmm-launcher-devices 1", lines)
    }

    /// Two lowercase hex digits a byte.
    static func hexDigits(_ bytes: [UInt8]) -> String {
        bytes.map { String($0 >> 4, radix: 16) + String($0 & 0xf, radix: 16) }.joined()
    }

    /// `text` as `count` bytes of two hex digits each; refused naming `what` otherwise.
    static func bytes(hexDigits text: Substring, count: Int, _ what: String,
                      _ bad: (String) -> LauncherError) throws(LauncherError) -> [UInt8] {
        let digits = Array(text.utf8)
        guard digits.count == count * 2 else { throw bad("\(what): \(digits.count) hex digits, not \(count * 2)") }
        var bytes: [UInt8] = []
        for i in stride(from: 0, to: digits.count, by: 2) {
            // Hex digits only: UInt8(_:radix:) alone also takes "+f" and "-0".
            guard digits[i..<i + 2].allSatisfy(isHexDigit), let v = UInt8(String(decoding: digits[i..<i + 2], as: UTF8.self), radix: 16) else {
                throw bad("\(what): not hex at digit \(i)")
            }
            bytes.append(v)
        }
        return bytes
    }

    static func isHexDigit(_ c: UInt8) -> Bool {
        (0x30...0x39).contains(c) || (0x41...0x46).contains(c) || (0x61...0x66).contains(c)
    }

    /// `0x` and 1 to `T`'s width of hex digits, nothing else (no sign), as `hex` writes them.
    static func hexValue<T: FixedWidthInteger & UnsignedInteger>(_ s: Substring, _: T.Type = T.self) -> T? {
        let digits = s.utf8.dropFirst(2)
        guard s.hasPrefix("0x"), !digits.isEmpty, digits.count <= T.bitWidth / 4, digits.allSatisfy(isHexDigit) else { return nil }
        return T(s.dropFirst(2), radix: 16)
    }

    /// Parses a blob; every line and value checked. `dir` names the snapshot.
    static func decode(_ bytes: [UInt8], version: UInt32, where dir: String) throws(LauncherError) -> BuiltInDeviceState {
        func bad(_ why: String) -> LauncherError { LauncherError(.snapshot, "\(dir): launcher devices: \(why)") }
        let lines = try TextBlob.lines(bytes, header: "vmm-launcher-devices 1", version: version, expected: Self.version,
                                       maxSize: maxSize, bad)
        func byte(_ s: Substring, _ what: String) throws(LauncherError) -> UInt8 {
            guard let v = hexValue(s, UInt8.self) else { throw bad("\(what) \(String(s).quotedForMessage)") }
            return v
        }
        var state = BuiltInDeviceState()
        var keyboard: PS2Keyboard?
        var mouse: PS2Mouse?
        var controllers: VGAControllers?
        for line in lines {
            let words = line.split(separator: " ", omittingEmptySubsequences: false)
            let key = String(words[0])
            switch (key, words.count) {
            case ("fw_cfg", 3...4) where state.fwCfg == nil:
                var selector: UInt16?
                if words[1] != "none" {
                    guard let s = hexValue(words[1], UInt16.self) else {
                        throw bad("fw_cfg selector \(String(words[1]).quotedForMessage)")
                    }
                    selector = s
                }
                // The largest item is a user's file (`FwCfgFile.maxTotalSize`).
                guard let offset = UInt32(plainDecimal: words[2]).map(Int.init), offset <= FwCfgFile.maxTotalSize else {
                    throw bad("fw_cfg offset \(String(words[2]).quotedForMessage)")
                }
                // A DMA address's high half, when one was written (a blob before DMA has none).
                var dmaHigh: UInt32 = 0
                if words.count == 4 {
                    guard let h = hexValue(words[3], UInt32.self), h != 0 else { throw bad("fw_cfg DMA address high half \(String(words[3]).quotedForMessage)") }
                    dmaHigh = h
                }
                state.fwCfg = FwCfgRegisters(selector: selector, offset: offset, dmaHigh: dmaHigh)
            case ("reset-control", 2) where state.resetControl == nil:
                let value = try byte(words[1], "reset-control value")
                guard value & ~0x02 == 0 else { throw bad("reset-control value \(hex(value)) (only bit 1 is kept)") }
                state.resetControl = value
            case ("port92", 2) where state.systemControlA == nil:
                let value = try byte(words[1], "port92 value")
                guard value & 0x01 == 0 else { throw bad("port92 value \(hex(value)) (bit 0, a reset, is never kept)") }
                state.systemControlA = value
            case ("i8042", 7) where state.i8042 == nil:
                var v: [UInt8] = []
                for (word, what) in zip(words[1...5], ["status", "configuration", "output port", "pending command", "last byte read"]) {
                    v.append(try byte(word, "i8042 \(what)"))
                }
                guard v[0] & ~i8042StatusBits == 0 else { throw bad("i8042 status \(hex(v[0])) (bits other than 0x1c)") }
                guard i8042Commands.contains(v[3]) else { throw bad("i8042 pending command \(hex(v[3]))") }
                var replies: [UInt8] = []
                var aux: UInt16 = 0
                if words[6] != "-" {
                    for word in words[6].split(separator: ",", omittingEmptySubsequences: false) {
                        guard replies.count < I8042.queueLimit else { throw bad("i8042: more than \(I8042.queueLimit) replies queued") }
                        if word.hasPrefix("m") { aux |= 1 << replies.count } // the mouse's
                        replies.append(try byte(word.hasPrefix("m") ? word.dropFirst() : word, "i8042 reply"))
                    }
                }
                state.i8042 = I8042Registers(status: v[0], config: v[1], outputPort: v[2], awaiting: v[3], lastRead: v[4], replies: replies,
                                             auxReplies: aux)
            case ("ps2-keyboard", 5) where keyboard == nil:
                guard let set = ["1": UInt8(1), "2": 2, "3": 3][String(words[1])] else {
                    throw bad("ps2-keyboard scan code set \(String(words[1]).quotedForMessage) (1, 2 or 3)")
                }
                guard words[2] == "0" || words[2] == "1" else { throw bad("ps2-keyboard scanning \(String(words[2]).quotedForMessage) (0 or 1)") }
                let awaiting = try byte(words[3], "ps2-keyboard pending command")
                guard awaiting == 0 || PS2Keyboard.dataCommands.contains(awaiting) else { throw bad("ps2-keyboard pending command \(hex(awaiting))") }
                var typed: [UInt8] = []
                if words[4] != "-" {
                    let digits = words[4].utf8.count
                    guard digits % 2 == 0, digits / 2 <= PS2Keyboard.typedLimit else {
                        throw bad("ps2-keyboard typed bytes: \(digits) hex digits (an even number, at most \(PS2Keyboard.typedLimit * 2))")
                    }
                    typed = try Self.bytes(hexDigits: words[4], count: digits / 2, "ps2-keyboard typed bytes", bad)
                }
                keyboard = PS2Keyboard(set: set, scanning: words[2] == "1", awaiting: awaiting, typed: typed)
            case ("ps2-mouse", 13) where mouse == nil:
                var v: [UInt8] = []
                for (word, what) in zip(words[1...7], ["status", "resolution", "sample rate", "wrap", "type", "detection state", "waiting command"]) {
                    v.append(try byte(word, "ps2-mouse \(what)"))
                }
                guard v[3] <= 1 else { throw bad("ps2-mouse wrap \(hex(v[3])) (0 or 1)") }
                var d: [Int32] = []
                for (word, what) in zip(words[8...10], ["x motion", "y motion", "wheel motion"]) {
                    // Digits after an optional '-', within the mouse's bound (refusal below).
                    let negative = word.hasPrefix("-")
                    guard let n = UInt16(plainDecimal: negative ? word.dropFirst() : word) else {
                        throw bad("ps2-mouse \(what) \(String(word).quotedForMessage)")
                    }
                    d.append(negative ? -Int32(n) : Int32(n))
                }
                let held = try byte(words[11], "ps2-mouse buttons")
                guard words[12] == "0" || words[12] == "1" else { throw bad("ps2-mouse owed \(String(words[12]).quotedForMessage) (0 or 1)") }
                let m = PS2Mouse(status: v[0], resolution: v[1], sampleRate: v[2], wrap: v[3] == 1, type: v[4], detect: v[5], awaiting: v[6],
                                 dx: d[0], dy: d[1], dz: d[2], buttons: held, owed: words[12] == "1")
                if let why = PS2Mouse.refusal(m) { throw bad(why) }
                mouse = m
            case ("console", 2) where state.consoleLCR == nil:
                state.consoleLCR = try byte(words[1], "console LCR")
            case ("pm1-control", 2) where state.pm1Control == nil:
                guard let v = hexValue(words[1], UInt16.self) else {
                    throw bad("pm1-control value \(String(words[1]).quotedForMessage)")
                }
                guard v & (1 << 13) == 0 else { throw bad("pm1-control value \(hex(v)) (SLP_EN is never kept)") }
                state.pm1Control = v
            case ("pm1-events", 3) where state.pm1Events == nil:
                var v: [UInt16] = []
                for (word, what) in zip(words[1...2], ["status", "enable"]) {
                    guard let x = hexValue(word, UInt16.self) else {
                        throw bad("pm1-events \(what) \(String(word).quotedForMessage)")
                    }
                    v.append(x)
                }
                guard v[0] & ~ACPIPowerManagement.powerButton == 0 else {
                    throw bad("pm1-events status \(hex(v[0])) (only the power button's bit 8 is ever set)")
                }
                state.pm1Events = PM1Events(status: v[0], enable: v[1])
            case ("pm-timer", 2) where state.pmTimer == nil:
                guard let v = hexValue(words[1], UInt32.self) else {
                    throw bad("pm-timer count \(String(words[1]).quotedForMessage)")
                }
                guard v <= ACPIPMTimer.mask else { throw bad("pm-timer count \(hex(v)) (the timer counts 24 bits)") }
                state.pmTimer = v
            case ("vga", 5) where state.vga == nil:
                let misc = try byte(words[1], "vga miscellaneous output"), index = try byte(words[2], "vga CRTC index")
                let status = try byte(words[3], "vga input status")
                guard misc & 0x10 == 0 else { throw bad("vga miscellaneous output \(hex(misc)) (bit 4 is never kept)") }
                guard status & ~VGARegisters.retraceBits == 0 else { throw bad("vga input status \(hex(status)) (only bits 0 and 3 flip)") }
                let crtc = try Self.bytes(hexDigits: words[4], count: VGARegisters.mode3CRTC.count, "vga CRTC registers", bad)
                state.vga = VGARegisters.Registers(misc: misc, index: index, status: status, crtc: crtc)
            case ("rtc", 4) where state.rtc == nil:
                let index = try byte(words[1], "rtc index")
                // Decimal digits after an optional '-', as written: Int64("+5") also reads a '+'.
                let negative = words[2].hasPrefix("-")
                guard let magnitude = UInt64(plainDecimal: words[2].dropFirst(negative ? 1 : 0)), magnitude <= UInt64(rtcMaxOffset) else {
                    throw bad("rtc offset \(String(words[2]).quotedForMessage) (decimal seconds, '-' for behind, at most \(rtcMaxOffset) either way)")
                }
                let ram = try Self.bytes(hexDigits: words[3], count: 128, "rtc memory", bad)
                guard ram[0x0a] & 0x80 == 0 else { throw bad("rtc register A \(hex(ram[0x0a])) (update in progress is never kept)") }
                guard ram[0x0c] & ~(rtcKeptFlags | rtcRaised) == 0 else {
                    throw bad("rtc register C \(hex(ram[0x0c])) (only its update-ended, alarm and periodic flags and whether the output was raised are kept)")
                }
                guard ram[0x0c] & rtcRaised == 0 || ram[0x0c] & ram[0x0b] & rtcKeptFlags != 0 else {
                    throw bad("rtc register C \(hex(ram[0x0c])) with register B \(hex(ram[0x0b])): the output raised with no enabled flag set")
                }
                let offset = negative ? -Int64(magnitude) : Int64(magnitude)
                state.rtc = RTCRegisters(index: index, offset: offset, ram: ram)
            case ("ata", let n) where ATAState.blobWordCounts.contains(n) && state.ata == nil:
                state.ata = try ATAState.decode(words, bad)
            case ("vga-dac", 7) where state.dac == nil:
                var v: [UInt8] = []
                for (word, what) in zip(words[1...4], ["write index", "read index", "component", "state"]) { v.append(try byte(word, "vga-dac \(what)")) }
                let d = VGADAC.Registers(writeIndex: v[0], readIndex: v[1], sub: v[2], state: v[3],
                                         cache: try Self.bytes(hexDigits: words[5], count: 3, "vga-dac cache", bad),
                                         palette: try Self.bytes(hexDigits: words[6], count: 768, "vga-dac palette", bad))
                if let why = VGADAC.refusal(d) { throw bad(why) }
                state.dac = d
            case ("bochs", BochsDisplay.Reg.count + 2) where state.bochs == nil:
                var values: [UInt16] = []
                for word in words.dropFirst() {
                    guard let v = hexValue(word, UInt16.self) else { throw bad("bochs register \(String(word).quotedForMessage)") }
                    values.append(v)
                }
                let r = BochsDisplay.Registers(index: values[0], regs: Array(values.dropFirst()))
                if let why = BochsDisplay.refusal(r) { throw bad(why) }
                state.bochs = r
            case ("hpet", HPETState.blobWords) where state.hpet == nil:
                state.hpet = try HPETState.decode(words, bad)
            case ("atapi", ATAPIState.blobWords) where state.atapi == nil:
                state.atapi = try ATAPIState.decode(words, bad)
            case ("floppy", FloppyState.blobWords) where state.floppy == nil:
                state.floppy = try FloppyState.decode(words, bad)
            case ("parallel", ParallelPort.blobWords) where state.parallel == nil:
                state.parallel = try ParallelPort.decode(words, bad)
            case ("isa-dma", ISADMA.blobWords) where state.dma == nil:
                state.dma = try ISADMA.decodeBlob(words, bad)
            case ("vga-controllers", VGAControllers.blobWords) where controllers == nil:
                controllers = try VGAControllers.decode(words, bad)
            case ("fw_cfg", _), ("reset-control", _), ("port92", _), ("i8042", _), ("ps2-keyboard", _), ("ps2-mouse", _), ("console", _), ("pm1-control", _),
                 ("pm1-events", _), ("pm-timer", _), ("vga", _), ("rtc", _), ("ata", _), ("bochs", _), ("vga-dac", _), ("hpet", _),
                 ("atapi", _), ("floppy", _), ("parallel", _), ("isa-dma", _), ("vga-controllers", _):
                throw bad("line \(line.quotedForMessage): a device given twice, or the wrong number of values")
            default:
                throw bad("unknown device \(key.quotedForMessage)")
            }
        }
        guard state.pm1Events == nil || state.pm1Control != nil else { throw bad("pm1-events without pm1-control") }
        if let keyboard {
            guard state.i8042 != nil else { throw bad("ps2-keyboard without i8042") }
            state.i8042?.keyboard = keyboard
        }
        if let mouse {
            guard state.i8042 != nil else { throw bad("ps2-mouse without i8042") }
            state.i8042?.mouse = mouse
        }
        if let controllers {
            guard state.vga != nil else { throw bad("vga-controllers without vga") }
            state.vga?.controllers = controllers
        }
        return state
    }
}
