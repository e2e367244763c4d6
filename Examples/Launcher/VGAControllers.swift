/// The VGA's sequencer (ports 0x3c4-0x3c5), graphics controller (0x3ce-0x3cf) and
/// attribute controller (0x3c0-0x3c1), and its feature control register (read at 0x3ca,
/// written at input status 1's port), as QEMU's VGA holds them (hw/display/vga.c) once
/// SeaBIOS set mode 3 and loaded its font. Guests written for QEMU program them to turn
/// blinking off, select planes or switch modes, and read them back, with QEMU's masks
/// applied; the attribute controller's ports take an index, then a value, in turn, a
/// flip-flop that a read of input status 1 resets. Part of `VGARegisters.Registers`
/// (its lock, its snapshot line's companion `vga-controllers`). As with the CRT
/// registers, nothing here changes what `VGATextScreen` reads.
struct VGAControllers: Equatable {
    /// The bits each register keeps (QEMU's `sr_mask` and `gr_mask`).
    static let sequencerMasks: [UInt8] = [0x03, 0x3d, 0x0f, 0x3f, 0x0e, 0x00, 0x00, 0xff]
    static let graphicsMasks: [UInt8] = [0x0f, 0x0f, 0x0f, 0x1f, 0x03, 0x7b, 0x0f, 0x0f, 0xff, 0, 0, 0, 0, 0, 0, 0]
    /// The attribute registers: 16 palette entries, mode, overscan, plane enable, pixel
    /// panning, colour select (QEMU's `VGA_ATT_C`, 21).
    static let attributeCount = 21
    /// Bit 5 of the attribute index: the palette is the display's (video on).
    static let paletteSource: UInt8 = 0x20

    /// SR0 0x03 (running), SR1 0x00, SR2 0x03 and SR4 0x02 as SeaBIOS's font load leaves
    /// them (`release_font_access`, SR4's bit 0 masked off), last written index 0.
    var sequencerIndex: UInt8 = 0
    var sequencer: [UInt8] = [0x03, 0x00, 0x03, 0x00, 0x02, 0x00, 0x00, 0x00]
    /// Mode 3's GR0-GR8 (GR5 0x10 odd/even, GR6 0x0e text at 0xb8000), last written index 5.
    var graphicsIndex: UInt8 = 5
    var graphics: [UInt8] = [0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x0e, 0x0f, 0xff, 0, 0, 0, 0, 0, 0, 0]
    /// Index 0x20 (video on), the last write SeaBIOS makes, which leaves the flip-flop at data.
    var attributeIndex: UInt8 = paletteSource
    /// Whether the next write to 0x3c0 is a value (true) or an index.
    var attributeData = true
    /// Mode 3's palette (0x00-0x05, 0x14, 0x07, 0x38-0x3f), mode 0x0c (blinking, line
    /// graphics), overscan 0, all planes, panning 8, colour select 0.
    var attribute: [UInt8] = [0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x14, 0x07, 0x38, 0x39, 0x3a, 0x3b, 0x3c, 0x3d, 0x3e, 0x3f,
                              0x0c, 0x00, 0x0f, 0x08, 0x00]
    /// Feature control: bit 4 only, as QEMU keeps it.
    var featureControl: UInt8 = 0

    /// The bits attribute register `i` keeps (QEMU's write: palette 6 bits, mode without
    /// bit 4, plane enable 6 bits, panning and colour select 4).
    static func attributeMask(_ i: Int) -> UInt8 {
        switch i {
        case 0..<16: 0x3f
        case 0x10: 0xef
        case 0x11: 0xff
        case 0x12: 0x3f
        default: 0x0f
        }
    }

    /// The ports these registers take: the rest of QEMU's 0x3c0-0x3cf beside the DAC's
    /// (0x3c6-0x3c9) and 0x3c2/0x3cc (`VGARegisters`); 0x3c3, 0x3cb and 0x3cd read 0 there.
    static let ports: [UInt16] = [0x3c0, 0x3c1, 0x3c3, 0x3c4, 0x3c5, 0x3ca, 0x3cb, 0x3cd, 0x3ce, 0x3cf]

    /// A read of `port` (one of `ports`).
    func read(_ port: UInt16) -> UInt8 {
        switch port {
        case 0x3c0: return attributeData ? 0 : attributeIndex
        case 0x3c1:
            let i = Int(attributeIndex & 0x1f)
            return i < Self.attributeCount ? attribute[i] : 0
        case 0x3c4: return sequencerIndex
        case 0x3c5: return sequencer[Int(sequencerIndex & 7)]
        case 0x3ca: return featureControl
        case 0x3ce: return graphicsIndex
        case 0x3cf: return graphics[Int(graphicsIndex & 0x0f)]
        default: return 0
        }
    }

    /// A write of `value` to `port` (one of `ports`; 0x3c1, 0x3c3, 0x3ca, 0x3cb and 0x3cd
    /// take none, as QEMU's).
    mutating func write(_ port: UInt16, _ value: UInt8) {
        switch port {
        case 0x3c0:
            if attributeData {
                let i = Int(attributeIndex & 0x1f)
                if i < Self.attributeCount { attribute[i] = value & Self.attributeMask(i) }
            } else {
                attributeIndex = value & 0x3f
            }
            attributeData.toggle()
        case 0x3c4: sequencerIndex = value & 7
        case 0x3c5: sequencer[Int(sequencerIndex & 7)] = value & Self.sequencerMasks[Int(sequencerIndex & 7)]
        case 0x3ce: graphicsIndex = value & 0x0f
        case 0x3cf: graphics[Int(graphicsIndex & 0x0f)] = value & Self.graphicsMasks[Int(graphicsIndex & 0x0f)]
        default: break
        }
    }

    // MARK: Snapshot line: `vga-controllers SR-INDEX SR GR-INDEX GR AR-INDEX AR-DATA AR FEATURE`
    // (Docs/SnapshotFormat.md), written only when not as mode 3 left them.

    static let blobWords = 9

    func blobLine() -> String {
        "vga-controllers \(hex(sequencerIndex)) \(BuiltInDeviceState.hexDigits(sequencer)) \(hex(graphicsIndex)) "
            + "\(BuiltInDeviceState.hexDigits(graphics)) \(hex(attributeIndex)) \(attributeData ? 1 : 0) "
            + "\(BuiltInDeviceState.hexDigits(attribute)) \(hex(featureControl))"
    }

    /// `words` (the line split at spaces, `vga-controllers` first), every value checked
    /// against what a write can leave.
    static func decode(_ words: [Substring], _ bad: (String) -> LauncherError) throws(LauncherError) -> VGAControllers {
        func byte(_ word: Substring, _ what: String) throws(LauncherError) -> UInt8 {
            guard let b = BuiltInDeviceState.hexValue(word, UInt8.self) else { throw bad("vga-controllers \(what) \(String(word).quotedForMessage)") }
            return b
        }
        var c = VGAControllers()
        c.sequencerIndex = try byte(words[1], "sequencer index")
        c.sequencer = try BuiltInDeviceState.bytes(hexDigits: words[2], count: 8, "vga-controllers sequencer registers", bad)
        c.graphicsIndex = try byte(words[3], "graphics index")
        c.graphics = try BuiltInDeviceState.bytes(hexDigits: words[4], count: 16, "vga-controllers graphics registers", bad)
        c.attributeIndex = try byte(words[5], "attribute index")
        guard words[6] == "0" || words[6] == "1" else { throw bad("vga-controllers attribute flip-flop \(String(words[6]).quotedForMessage) (0 or 1)") }
        c.attributeData = words[6] == "1"
        c.attribute = try BuiltInDeviceState.bytes(hexDigits: words[7], count: attributeCount, "vga-controllers attribute registers", bad)
        c.featureControl = try byte(words[8], "feature control")
        guard c.sequencerIndex < 8, c.graphicsIndex < 16, c.attributeIndex < 0x40, c.featureControl & ~0x10 == 0 else {
            throw bad("vga-controllers indexes \(hex(c.sequencerIndex)) \(hex(c.graphicsIndex)) \(hex(c.attributeIndex)) or feature control "
                      + "\(hex(c.featureControl)) (below 8, 16 and 0x40; bit 4 only)")
        }
        for (i, (v, mask)) in zip(c.sequencer, sequencerMasks).enumerated() where v & ~mask != 0 {
            throw bad("vga-controllers sequencer register \(i) \(hex(v)) (bits \(hex(mask)) only)")
        }
        for (i, (v, mask)) in zip(c.graphics, graphicsMasks).enumerated() where v & ~mask != 0 {
            throw bad("vga-controllers graphics register \(i) \(hex(v)) (bits \(hex(mask)) only)")
        }
        for (i, v) in c.attribute.enumerated() where v & ~attributeMask(i) != 0 {
            throw bad("vga-controllers attribute register \(i) \(hex(v)) (bits \(hex(attributeMask(i))) only)")
        }
        return c
    }
}
