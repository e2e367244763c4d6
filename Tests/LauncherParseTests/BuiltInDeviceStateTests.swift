@testable import Launcher
import Testing

/// The launcher's built-in devices' state in a snapshot (`BuiltInDeviceState`): input
/// like any file `vmm restore` reads.
@Suite("the built-in devices' state in a snapshot")
struct BuiltInDeviceStateTests {
    static func decode(_ text: String) -> Result<BuiltInDeviceState, LauncherError> {
        Result { () throws(LauncherError) in try BuiltInDeviceState.decode(Array(text.utf8), version: 1, where: "snap") }
    }

    static let full = BuiltInDeviceState(
        fwCfg: .init(selector: 0x19, offset: 7), resetControl: 0x02, systemControlA: 0xc2,
        i8042: .init(status: 0x1c, config: 0x45, outputPort: 0xcf, awaiting: 0xd1, lastRead: 0x55, replies: [0xfa, 0xaa, 0x5a],
                      auxReplies: 0b100, keyboard: .init(set: 1, scanning: false, awaiting: 0xf0, typed: [0xe0, 0x48, 0xe0, 0xc8])),
        consoleLCR: 0x83, pm1Control: 0x1c01, pm1Events: .init(status: 0x100, enable: 0x521), pmTimer: 0xabcdef,
        vga: .init(misc: 0x66, index: 0x0f, status: 0x09, crtc: (0..<25).map { UInt8($0 * 10) }),
        rtc: .init(index: 0x8b, offset: -86_400, ram: (0..<128).map { UInt8($0 == 0x0a ? 0x26 : $0 == 0x0c ? 0x70 : $0) }))

    @Test("what is saved reads back as it was: every device, none, and a selection of no item")
    func roundTrip() throws {
        for state in [Self.full, BuiltInDeviceState(), BuiltInDeviceState(fwCfg: .init(selector: nil, offset: 0)),
                      BuiltInDeviceState(fwCfg: .init(selector: 0x21, offset: 5, dmaHigh: 1))] {
            #expect(try Self.decode(String(decoding: state.encoded(), as: UTF8.self)).get() == state)
        }
        // A blob from before the PM1 event block was modelled: its registers restore as 0.
        #expect(try Self.decode("vmm-launcher-devices 1\npm1-control 0x1\nend\n").get() == BuiltInDeviceState(pm1Control: 1))
        // One from before the keyboard was modelled: set 2, scanning, nothing typed.
        let old = try Self.decode("vmm-launcher-devices 1\ni8042 0x1c 0x61 0xcf 0x0 0x0 -\nend\n").get()
        #expect(old.i8042?.keyboard == PS2Keyboard() && old.i8042?.keyboard.set == 2 && old.i8042?.keyboard.scanning == true)
        // A keyboard the guest switched to scan code set 3 keeps it.
        var set3 = Self.full
        set3.i8042?.keyboard.set = 3
        #expect(String(decoding: set3.encoded(), as: UTF8.self).contains("\nps2-keyboard 3 0 0xf0 e048e0c8\n"))
        #expect(try Self.decode(String(decoding: set3.encoded(), as: UTF8.self)).get() == set3)
        #expect(String(decoding: Self.full.encoded(), as: UTF8.self) == """
            vmm-launcher-devices 1
            fw_cfg 0x19 7
            reset-control 0x2
            port92 0xc2
            i8042 0x1c 0x45 0xcf 0xd1 0x55 0xfa,0xaa,m0x5a
            ps2-keyboard 1 0 0xf0 e048e0c8
            console 0x83
            pm1-control 0x1c01
            pm1-events 0x100 0x521
            pm-timer 0xabcdef
            vga 0x66 0xf 0x9 \((0..<25).map { ($0 * 10 < 16 ? "0" : "") + String($0 * 10, radix: 16) }.joined())
            rtc 0x8b -86400 \((0..<128).map { $0 == 0x0a ? "26" : $0 == 0x0c ? "70" : ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined())
            end

            """)
    }

    /// Every device in the widest state its checks allow: 16 replies queued (all the
    /// mouse's), 256 bytes typed, the mouse at its bounds, a sector in flight on a disk of
    /// 2^48 sectors, every register and the DAC's whole palette at their longest values.
    static var largest: BuiltInDeviceState {
        var ata = ATAState()
        ata.status = 0xd9
        (ata.error, ata.feature, ata.count, ata.lbaLow, ata.lbaMid, ata.lbaHigh) = (0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
        (ata.hobFeature, ata.hobCount, ata.hobLow, ata.hobMid, ata.hobHigh, ata.select, ata.control) = (0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
        (ata.transfer, ata.lba, ata.remaining, ata.position, ata.lba48, ata.line) = (.read, 0xf_ffff_0000, 0xfff0, 0x1ffe, true, true)
        (ata.multiple, ata.blockSize) = (ATAState.maxMultiple, ATAState.maxMultiple) // a READ MULTIPLE's block of 16 sectors
        ata.buffer = [UInt8](repeating: 0xab, count: Int(ATAState.maxMultiple) * ATAState.sectorSize)
        let mouse = PS2Mouse(status: 0x70, resolution: 0xff, sampleRate: 0xff, wrap: true, type: 4, detect: 3, awaiting: 0xe8,
                             dx: -PS2Mouse.maxDelta, dy: -PS2Mouse.maxDelta, dz: -PS2Mouse.maxDelta, buttons: 0x1f, owed: true)
        var bochs = [UInt16](repeating: 0xffff, count: BochsDisplay.Reg.count)
        (bochs[BochsDisplay.Reg.id], bochs[BochsDisplay.Reg.bank]) = (BochsDisplay.lastID, UInt16(BochsDisplay.vramSize >> 16 - 1))
        BochsDisplay.fixUp(&bochs)
        let keyboard = PS2Keyboard(set: 1, scanning: true, awaiting: 0xf0, typed: [UInt8](repeating: 0xe0, count: PS2Keyboard.typedLimit))
        return BuiltInDeviceState(
            fwCfg: .init(selector: 0xffff, offset: FwCfgFile.maxTotalSize, dmaHigh: 0xffff_ffff), resetControl: 0x02, systemControlA: 0xfe,
            i8042: .init(status: 0x1c, config: 0xff, outputPort: 0xff, awaiting: 0xd4, lastRead: 0xff,
                         replies: [UInt8](repeating: 0xff, count: I8042.queueLimit), auxReplies: 0xffff, keyboard: keyboard, mouse: mouse),
            consoleLCR: 0xff, pm1Control: 0xdfff, pm1Events: .init(status: 0x100, enable: 0xffff), pmTimer: ACPIPMTimer.mask,
            vga: .init(misc: 0xef, index: 0xff, status: 0x09, crtc: [UInt8](repeating: 0xff, count: VGARegisters.mode3CRTC.count)),
            rtc: .init(index: 0xff, offset: -BuiltInDeviceState.rtcMaxOffset, ram: (0..<128).map { $0 == 0x0a ? 0x7f : $0 == 0x0c ? 0x70 : 0xff }),
            ata: .init(sectors: ATAState.maxSectors, state: ata, geometry: ATAGeometry(cylinders: 16383, heads: 16, sectorsPerTrack: 63, translation: .large)),
            bochs: .init(index: 0xffff, regs: bochs),
            dac: .init(writeIndex: 0xff, readIndex: 0xff, sub: 2, state: 3, cache: [0xff, 0xff, 0xff],
                       palette: [UInt8](repeating: 0x3f, count: 768)), hpet: largestHPET, floppy: largestFloppy,
            parallel: .init(data: 0xff, status: 0xd9, control: 0xff, pending: true),
            dma: (0..<2).map { n in
                ISADMA.Controller(command: 0x04, mask: 0xff, status: 0xf0, flipFlop: true, channels: (0..<4).map { k in
                    ISADMA.Channel(baseAddress: 0xffff, baseCount: 0xffff, address: UInt32(0xffff) << UInt32(n), mode: 0xfc | UInt8(k), page: 0xff)
                })
            })
    }

    /// The floppy controller with every value at its widest.
    static var largestFloppy: FloppyState {
        var f = FloppyState()
        (f.sra, f.srb, f.dor, f.current, f.tdr, f.dsr, f.msr, f.status0) = (0xc0, 0xe3, 0xff, 1, 0x04, 0xff, 0xd0, 0xff)
        (f.phase, f.position, f.length, f.resetSenses) = (.result, 14, 15, 4)
        (f.timer0, f.timer1, f.precompensation, f.config, f.lock, f.powerDown) = (0xff, 0xff, 0xff, 0xff, 1, 0xff)
        f.fifo = [UInt8](repeating: 0xff, count: FloppyState.fifoSize)
        f.drives = [FloppyState.Drive](repeating: .init(head: 1, track: 0xff, sector: 0xff, perpendicular: 0x0f, lastSector: 0xff), count: 2)
        return f
    }

    /// Every register of the HPET at its longest.
    static var largestHPET: HPETState {
        var h = HPETState()
        (h.config, h.isr, h.counter) = (3, 7, ~0)
        for n in 0..<HPETState.timerCount {
            h.timers[n] = .init(config: HPETState.TimerConfig.reset | HPETState.TimerConfig.writable & ~HPETState.TimerConfig.mode32,
                                comparator: ~0, period: 0x7fff_ffff_ffff_ffff, fsb: ~0, deadline: 0)
        }
        return h
    }

    @Test("the widest state every device can be in fits the blob's limit and reads back as it was")
    func largestFits() throws {
        let bytes = Self.largest.encoded()
        #expect(bytes.count <= BuiltInDeviceState.maxSize, "\(bytes.count) bytes")
        #expect(try Self.decode(String(decoding: bytes, as: UTF8.self)).get() == Self.largest)
    }

    @Test("a damaged blob is refused in one line naming the snapshot, the device and the value")
    func hostile() {
        let cases: [(String, String)] = [
            ("vmm-launcher-devices 2\nend\n", "not a 'vmm-launcher-devices 1' blob ending in 'end'"),
            ("vmm-launcher-devices 1\nfw_cfg 0x19 7\n", "not a 'vmm-launcher-devices 1' blob ending in 'end'"),
            ("vmm-launcher-devices 1\nfw_cfg 0x10000 0\nend\n", "fw_cfg selector '0x10000'"),
            ("vmm-launcher-devices 1\nfw_cfg 0x19 99999999999999999999\nend\n", "fw_cfg offset '99999999999999999999'"),
            ("vmm-launcher-devices 1\nfw_cfg 0x19 -1\nend\n", "fw_cfg offset '-1'"),
            ("vmm-launcher-devices 1\nfw_cfg 0x19 8388609\nend\n", "fw_cfg offset '8388609'"),
            ("vmm-launcher-devices 1\nfw_cfg 0x19 7 0x0\nend\n", "fw_cfg DMA address high half '0x0'"),
            ("vmm-launcher-devices 1\nfw_cfg 0x19 7 0x100000000\nend\n", "fw_cfg DMA address high half '0x100000000'"),
            ("vmm-launcher-devices 1\nfw_cfg 0x19 7 0x1 0x1\nend\n", "a device given twice, or the wrong number of values"),
            ("vmm-launcher-devices 1\nfw_cfg 0x19 1\nfw_cfg 0x19 1\nend\n", "a device given twice, or the wrong number of values"),
            ("vmm-launcher-devices 1\nreset-control 0x6\nend\n", "reset-control value 0x6 (only bit 1 is kept)"),
            ("vmm-launcher-devices 1\nreset-control 6\nend\n", "reset-control value '6'"),
            ("vmm-launcher-devices 1\nport92 0x3\nend\n", "port92 value 0x3 (bit 0, a reset, is never kept)"),
            ("vmm-launcher-devices 1\nport92 0x100\nend\n", "port92 value '0x100'"),
            ("vmm-launcher-devices 1\nport92 0x2 0x2\nend\n", "a device given twice, or the wrong number of values"),
            ("vmm-launcher-devices 1\ni8042 0x1a 0x3 0xcf 0x0 0x0 -\nend\n", "i8042 status 0x1a (bits other than 0x1c)"),
            ("vmm-launcher-devices 1\ni8042 0x18 0x3 0xcf 0xfe 0x0 -\nend\n", "i8042 pending command 0xfe"),
            ("vmm-launcher-devices 1\ni8042 0x18 0x3 0xcf 0x0 0x0 " + Array(repeating: "0xfa", count: 17).joined(separator: ",") + "\nend\n",
             "i8042: more than 16 replies queued"),
            ("vmm-launcher-devices 1\ni8042 0x18 0x3 0xcf 0x0 0x0 0xfa,,0xfa\nend\n", "i8042 reply ''"),
            ("vmm-launcher-devices 1\ni8042 0x18 0x3\nend\n", "a device given twice, or the wrong number of values"),
            ("vmm-launcher-devices 1\nps2-keyboard 2 1 0x0 -\nend\n", "ps2-keyboard without i8042"),
            ("vmm-launcher-devices 1\ni8042 0x18 0x3 0xcf 0x0 0x0 -\nps2-keyboard 4 1 0x0 -\nend\n", "ps2-keyboard scan code set '4' (1, 2 or 3)"),
            ("vmm-launcher-devices 1\ni8042 0x18 0x3 0xcf 0x0 0x0 -\nps2-keyboard 0 1 0x0 -\nend\n", "ps2-keyboard scan code set '0' (1, 2 or 3)"),
            ("vmm-launcher-devices 1\ni8042 0x18 0x3 0xcf 0x0 0x0 -\nps2-keyboard 03 1 0x0 -\nend\n", "ps2-keyboard scan code set '03' (1, 2 or 3)"),
            ("vmm-launcher-devices 1\ni8042 0x18 0x3 0xcf 0x0 0x0 -\nps2-keyboard 2 2 0x0 -\nend\n", "ps2-keyboard scanning '2' (0 or 1)"),
            ("vmm-launcher-devices 1\ni8042 0x18 0x3 0xcf 0x0 0x0 -\nps2-keyboard 2 1 0xf4 -\nend\n", "ps2-keyboard pending command 0xf4"),
            ("vmm-launcher-devices 1\ni8042 0x18 0x3 0xcf 0x0 0x0 -\nps2-keyboard 2 1 0x0 1e9\nend\n",
             "ps2-keyboard typed bytes: 3 hex digits (an even number, at most 512)"),
            ("vmm-launcher-devices 1\ni8042 0x18 0x3 0xcf 0x0 0x0 -\nps2-keyboard 2 1 0x0 " + String(repeating: "1e", count: 257) + "\nend\n",
             "ps2-keyboard typed bytes: 514 hex digits (an even number, at most 512)"),
            ("vmm-launcher-devices 1\ni8042 0x18 0x3 0xcf 0x0 0x0 -\nps2-keyboard 2 1 0x0 1x\nend\n", "ps2-keyboard typed bytes: not hex at digit 0"),
            ("vmm-launcher-devices 1\ni8042 0x18 0x3 0xcf 0x0 0x0 -\nps2-keyboard 2 1 0x0 -\nps2-keyboard 2 1 0x0 -\nend\n",
             "a device given twice, or the wrong number of values"),
            // Hex digits only: a sign is refused (UInt8(_:radix:) alone took "+8", "-0").
            ("vmm-launcher-devices 1\ni8042 0x+8 0x3 0xcf 0x0 0x0 -\nend\n", "i8042 status '0x+8'"),
            ("vmm-launcher-devices 1\npm-timer 0x-0\nend\n", "pm-timer count '0x-0'"),
            ("vmm-launcher-devices 1\nfw_cfg 0x+19 7\nend\n", "fw_cfg selector '0x+19'"),
            ("vmm-launcher-devices 1\nrtc 0x0 0 +f" + String(repeating: "00", count: 127) + "\nend\n", "rtc memory: not hex at digit 0"),
            ("vmm-launcher-devices 1\ni8042 0x18 0x3 0xcf 0x0 0x0 -\nps2-keyboard +1 1 0x0 -\nend\n", "ps2-keyboard scan code set '+1' (1, 2 or 3)"),
            ("vmm-launcher-devices 1\ni8042 0x18 0x3 0xcf 0x0 0x0 -\nps2-keyboard 2 1 0x0 1e-0\nend\n", "ps2-keyboard typed bytes: not hex at digit 2"),
            ("vmm-launcher-devices 1\nhpet-x 0x0\nend\n", "unknown device 'hpet-x'"),
            ("vmm-launcher-devices 1\nrtc 0x0\nend\n", "a device given twice, or the wrong number of values"),
            ("vmm-launcher-devices 1\npm1-control 0x2001\nend\n", "pm1-control value 0x2001 (SLP_EN is never kept)"),
            ("vmm-launcher-devices 1\npm1-control 0x10000\nend\n", "pm1-control value '0x10000'"),
            ("vmm-launcher-devices 1\npm1-control 0x1\npm1-events 0x1 0x0\nend\n", "pm1-events status 0x1 (only the power button's bit 8 is ever set)"),
            ("vmm-launcher-devices 1\npm1-control 0x1\npm1-events 0x0 0x10000\nend\n", "pm1-events enable '0x10000'"),
            ("vmm-launcher-devices 1\npm1-control 0x1\npm1-events 0x0\nend\n", "a device given twice, or the wrong number of values"),
            ("vmm-launcher-devices 1\npm1-events 0x100 0x100\nend\n", "pm1-events without pm1-control"),
            ("vmm-launcher-devices 1\npm-timer 0x1000000\nend\n", "pm-timer count 0x1000000 (the timer counts 24 bits)"),
            ("vmm-launcher-devices 1\npm-timer 0x100000000\nend\n", "pm-timer count '0x100000000'"),
            ("vmm-launcher-devices 1\npm-timer 4660\nend\n", "pm-timer count '4660'"),
            ("vmm-launcher-devices 1\npm-timer 0x-1\nend\n", "pm-timer count '0x-1'"),
            ("vmm-launcher-devices 1\npm-timer 0x1\npm-timer 0x1\nend\n", "a device given twice, or the wrong number of values"),
            ("vmm-launcher-devices 1\nvga 0x77 0x0 0x0 " + String(repeating: "00", count: 25) + "\nend\n",
             "vga miscellaneous output 0x77 (bit 4 is never kept)"),
            ("vmm-launcher-devices 1\nvga 0x67 0x0 0x2 " + String(repeating: "00", count: 25) + "\nend\n",
             "vga input status 0x2 (only bits 0 and 3 flip)"),
            ("vmm-launcher-devices 1\nvga 0x67 0x100 0x0 " + String(repeating: "00", count: 25) + "\nend\n", "vga CRTC index '0x100'"),
            ("vmm-launcher-devices 1\nvga 0x67 0x0 0x0 " + String(repeating: "00", count: 24) + "\nend\n", "vga CRTC registers: 48 hex digits, not 50"),
            ("vmm-launcher-devices 1\nvga 0x67 0x0 0x0 " + String(repeating: "0g", count: 25) + "\nend\n", "vga CRTC registers: not hex at digit 0"),
            ("vmm-launcher-devices 1\nvga 0x67 0x0 0x0\nend\n", "a device given twice, or the wrong number of values"),
            ("vmm-launcher-devices 1\nrtc 0x0 6324480001 " + String(repeating: "00", count: 128) + "\nend\n",
             "rtc offset '6324480001' (decimal seconds, '-' for behind, at most 6324480000 either way)"),
            ("vmm-launcher-devices 1\nrtc 0x0 +5 " + String(repeating: "00", count: 128) + "\nend\n",
             "rtc offset '+5' (decimal seconds, '-' for behind, at most 6324480000 either way)"),
            ("vmm-launcher-devices 1\nrtc 0x0 -+5 " + String(repeating: "00", count: 128) + "\nend\n",
             "rtc offset '-+5' (decimal seconds, '-' for behind, at most 6324480000 either way)"),
            ("vmm-launcher-devices 1\nrtc 0x0 0 " + String(repeating: "00", count: 127) + "\nend\n", "rtc memory: 254 hex digits, not 256"),
            ("vmm-launcher-devices 1\nrtc 0x0 0 " + String(repeating: "0g", count: 128) + "\nend\n", "rtc memory: not hex at digit 0"),
            ("vmm-launcher-devices 1\nrtc 0x0 0 " + String(repeating: "00", count: 10) + "80" + String(repeating: "00", count: 117) + "\nend\n",
             "rtc register A 0x80 (update in progress is never kept)"),
            ("vmm-launcher-devices 1\nrtc 0x0 0 " + String(repeating: "00", count: 12) + "f0" + String(repeating: "00", count: 115) + "\nend\n",
             "rtc register C 0xf0 with register B 0x0: the output raised with no enabled flag set"),
            ("vmm-launcher-devices 1\nrtc 0x0 0 " + String(repeating: "00", count: 12) + "0f" + String(repeating: "00", count: 115) + "\nend\n",
             "rtc register C 0xf (only its update-ended, alarm and periodic flags and whether the output was raised are kept)"),
            ("vmm-launcher-devices 1\n\nend\n", "unknown device ''"),
        ]
        for (text, why) in cases {
            guard case let .failure(error) = Self.decode(text) else { Issue.record("accepted: \(text)"); continue }
            #expect(error.status == .snapshot)
            #expect(error.message.hasPrefix("snap: launcher devices: ") && error.message.contains(why), "\(error.message)")
            #expect(!error.message.contains("\n"))
        }
        guard case let .failure(version) = Result(catching: { () throws(LauncherError) in
            try BuiltInDeviceState.decode(Self.full.encoded(), version: 2, where: "snap")
        }) else { Issue.record("version 2 accepted"); return }
        #expect(version.message == "snap: launcher devices: version 2; this vmm reads version 1")
    }

    /// A snapshot of another machine (the RTC's ports taken by a plugin since, say) is
    /// refused in one line, and refused before anything changed: the i8042's state was
    /// once restored before the RTC's absence was noticed.
    @Test("a snapshot whose built-in devices differ from this machine's is refused, with no device changed")
    func presenceMismatch() throws {
        let devices = BuiltInDevices()
        devices.i8042 = I8042()
        devices.rtc = RTC(cpus: 1, lowRAM: 1 << 20, highRAM: 0)
        let before = try #require(devices.i8042?.state)
        var saved = Self.full
        saved.fwCfg = nil; saved.resetControl = nil; saved.systemControlA = nil; saved.consoleLCR = nil; saved.pm1Control = nil; saved.pmTimer = nil; saved.vga = nil; saved.rtc = nil
        #expect(saved.i8042 != before)
        #expect(throws: LauncherError.self) { try devices.restore(saved) }
        do { try devices.restore(saved) } catch {
            #expect(error.message == "launcher devices: the snapshot has no state of the built-in RTC (ports 0x70-0x71), and this machine has one (a plugin built or removed since?)")
        }
        #expect(devices.i8042?.state == before)
        devices.rtc = nil
        try devices.restore(saved)
        #expect(devices.i8042?.state == saved.i8042)
    }

    /// Port 0x92 was built in after snapshots with this blob were first written: a blob
    /// without its line restores it as after a reset; a line for it on a machine whose
    /// port 0x92 a plugin took is refused before anything changes.
    @Test("port 0x92's byte is restored; a blob without it (older) restores it as after a reset; one with it on a machine without it is refused")
    func systemControlPortA() throws {
        let devices = BuiltInDevices()
        devices.systemControlA = SystemControlPortA()
        devices.i8042 = I8042()
        var saved = BuiltInDeviceState(systemControlA: 0x02, i8042: Self.full.i8042)
        try devices.restore(saved)
        #expect(devices.systemControlA?.state == 0x02)
        saved.systemControlA = nil
        try devices.restore(saved)
        #expect(devices.systemControlA?.state == 0)
        devices.systemControlA = nil
        let before = try #require(devices.i8042?.state)
        saved.systemControlA = 0x02
        saved.i8042?.config = 0x01
        do {
            try devices.restore(saved)
            Issue.record("restored port 0x92's state into a machine without it")
        } catch {
            #expect(error.message == "launcher devices: the snapshot has state of the built-in system control port A (port 0x92), and this machine has none (a plugin built or removed since?)")
        }
        #expect(devices.i8042?.state == before)
    }
}
