@testable import Launcher
import Testing

/// The floppy controller with QEMU's empty drive A (`FloppyController`) as a guest's
/// driver sees it through its ports, against QEMU's hw/block/fdc.c; the guest on real KVM
/// is `FloppyGuestTests`.
@Suite("the floppy controller's registers and commands, drive A empty")
struct FloppyControllerTests {
    typealias Levels = ATADiskTests.Levels

    static func controller() -> (FloppyController, Levels) {
        let f = FloppyController(), levels = Levels()
        f.connectInterrupt { level in levels.m.withLock { $0.append(level) } }
        return (f, levels)
    }

    /// MSR, DOR, TDR, SRB, DIR.
    static func registers(_ f: FloppyController) -> [UInt8] { [0x3f4, 0x3f2, 0x3f3, 0x3f1, 0x3f7].map { f.read($0) } }

    /// `bytes` to the FIFO, then the result: every byte while the MSR says one is there
    /// (RQM and DIO), as a driver reads it.
    static func command(_ f: FloppyController, _ bytes: [UInt8]) -> [UInt8] {
        for b in bytes { f.write(0x3f5, b) }
        var result: [UInt8] = []
        while f.read(0x3f4) & 0xc0 == 0xc0, result.count < 32 { result.append(f.read(0x3f5)) }
        return result
    }

    @Test("after power-on: MSR 0x80 (ready for a command), DOR 0x0c (out of reset, DMA), TDR 0, SRB 0xc0, the disk change line set; 0x3f0 and 0x3f6 are not its ports")
    func powerOn() {
        let (f, levels) = Self.controller()
        #expect(Self.registers(f) == [0x80, 0x0c, 0x00, 0xc0, 0x80])
        #expect(f.read(0x3f0) == 0xff && f.read(0x3f6) == 0xff)
        #expect(levels.all.isEmpty)
    }

    @Test("a reset through the DOR raises IRQ 6; four SENSE INTERRUPT STATUS answer ready-changed for each drive position (0xc0-0xc3, track 0), the first lowering the line; a fifth is invalid (0x80)")
    func dorReset() {
        let (f, levels) = Self.controller()
        f.write(0x3f2, 0x08) // reset held
        f.write(0x3f5, 0x10) // ignored in reset
        f.write(0x3f2, 0x0c)
        #expect(levels.all == [true])
        #expect((0..<4).map { _ in Self.command(f, [0x08]) } == [[0xc0, 0], [0xc1, 0], [0xc2, 0], [0xc3, 0]])
        #expect(levels.all == [true, false])
        #expect(Self.command(f, [0x08]) == [0x80])
        // The DSR's software reset: the same, the DOR left out of reset.
        f.write(0x3f4, 0x80)
        #expect(levels.all == [true, false, true])
        #expect(f.read(0x3f2) == 0x0c)
        // A reset with the interrupt still pending: the line drops and rises again (an edge).
        f.write(0x3f2, 0x08); f.write(0x3f2, 0x0c)
        #expect(levels.all == [true, false, true, false, true])
        #expect(Self.command(f, [0x08]) == [0xc0, 0])
    }

    @Test("VERSION 0x90, PART ID 0x41; SPECIFY answers nothing and DUMPREG reports its timers and DMA bit, drive A's 255 sectors (an empty drive's bound) and CONFIGURE's 0x60")
    func identification() {
        let (f, levels) = Self.controller()
        #expect(Self.command(f, [0x10]) == [0x90])
        #expect(Self.command(f, [0x18]) == [0x41])
        #expect(Self.command(f, [0x03, 0xaf, 0x02]) == [] && f.read(0x3f4) == 0x80)
        #expect(Self.command(f, [0x0e]) == [0, 0, 0, 0, 0x0a, 0x03, 0xff, 0, 0x60, 0])
        #expect(Self.command(f, [0x03, 0xdf, 0x03]) == []) // non-DMA
        #expect(Self.command(f, [0x0e]) == [0, 0, 0, 0, 0x0d, 0x02, 0xff, 0, 0x60, 0])
        #expect(f.read(0x3f2) == 0x04)
        #expect(Self.command(f, [0x13, 0, 0x57, 0x09]) == [])
        #expect(Self.command(f, [0x94]) == [0x10]) // LOCK
        #expect(Self.command(f, [0x0e]).suffix(3) == [0x80, 0x57, 0x09])
        #expect(levels.all.isEmpty)
    }

    @Test("SEEK and RECALIBRATE end with IRQ 6 and SENSE INTERRUPT STATUS's seek end (0x20) and track; SENSE DRIVE STATUS: A two-sided-ready at track 0 or not, B write protected; the absent B does not move")
    func seeks() {
        let (f, levels) = Self.controller()
        #expect(Self.command(f, [0x0f, 0x00, 10]) == [])
        #expect(levels.all == [true])
        #expect(Self.command(f, [0x08]) == [0x20, 10])
        #expect(levels.all == [true, false])
        #expect(Self.command(f, [0x04, 0x00]) == [0x28])
        #expect(Self.command(f, [0x07, 0x00]) == [] && Self.command(f, [0x08]) == [0x20, 0])
        #expect(Self.command(f, [0x04, 0x00]) == [0x38])
        #expect(Self.command(f, [0x0f, 0x01, 5]) == [] && Self.command(f, [0x08]) == [0x21, 0])
        #expect(Self.command(f, [0x04, 0x01]) == [0x79])
        // Relative seeks: in by 200 from 0, out by 250 (to 0), in past the last track (254).
        #expect(Self.command(f, [0xcf, 0x00, 200]) == [] && Self.command(f, [0x08]) == [0x20, 200])
        #expect(Self.command(f, [0x8f, 0x00, 250]) == [] && Self.command(f, [0x08]) == [0x20, 0])
        #expect(Self.command(f, [0xcf, 0x00, 255]) == [] && Self.command(f, [0x08]) == [0x20, 254])
        #expect(levels.all == [true, false, true, false, true, false, true, false, true, false, true, false])
    }

    @Test("READ DATA finds no diskette: IRQ 6 and seven result bytes, ST0 abnormal termination (0x40), the place asked for, size code 2; drive B (no sectors) also ends of cylinder (ST1 0x80); deleted data 0x60")
    func readFails() {
        let (f, levels) = Self.controller()
        #expect(Self.command(f, [0xe6, 0x00, 2, 0, 1, 2, 18, 0x1b, 0xff]) == [0x40, 0, 0, 2, 0, 1, 2])
        #expect(levels.all == [true, false])
        #expect(Self.command(f, [0x04, 0x00]) == [0x28], "the head moved to track 2")
        #expect(Self.command(f, [0x46, 0x01, 0, 0, 1, 2, 18, 0x1b, 0xff]) == [0x41, 0x80, 0, 0, 0, 1, 2])
        #expect(Self.command(f, [0xc5, 0x00, 0, 1, 1, 2, 18, 0x1b, 0xff]) == [0x40, 0, 0, 0, 1, 1, 2], "head 1 of a one-sided drive")
        #expect(Self.command(f, [0x4c, 0x01, 0, 0, 1, 2, 18, 0x1b, 0xff]) == [0x60, 0, 0, 2, 0, 1, 2], "on the drive selected before, A")
        #expect(Self.command(f, [0x4a, 0x00]) == [0x00, 0, 0, 2, 0, 2, 2], "READ ID: QEMU's next sector 'spinning' by")
        #expect(levels.all == [true, false, true, false, true, false, true, false, true, false])
    }

    @Test("an unknown command, FORMAT AND WRITE and SENSE INTERRUPT STATUS with no interrupt are invalid (0x80); DRIVE SPECIFICATION without a last byte's bit 7 holds the controller busy until a reset, as QEMU's")
    func invalid() {
        let (f, _) = Self.controller()
        #expect(Self.command(f, [0x00]) == [0x80])
        #expect(Self.command(f, [0xcd] + [UInt8](repeating: 0, count: 10)) == [0x80])
        #expect(Self.command(f, [0x08]) == [0x80])
        #expect(Self.command(f, [0x8e, 0x21, 0x22, 0x23, 0x24, 0xc0]) == [0x21, 0x21, 0, 0])
        #expect(Self.command(f, [0x8e, 1, 2, 3, 4, 5]) == [] && f.read(0x3f4) == 0x10)
        #expect(Self.command(f, [0x10]) == [] && f.read(0x3f4) == 0x10)
        f.write(0x3f2, 0x08); f.write(0x3f2, 0x0c)
        #expect(f.read(0x3f4) == 0x80)
        #expect(Self.command(f, [0x08]) == [0xc0, 0])
    }

    @Test("the tape drive register's boot select swaps drives 0 and 1: unit 1 seeks drive A, DUMPREG lists B's track first")
    func bootSelect() {
        let (f, _) = Self.controller()
        f.write(0x3f3, 0xff)
        #expect(f.read(0x3f3) == 0x04)
        #expect(Self.command(f, [0x0f, 0x01, 3]) == [] && Self.command(f, [0x08]) == [0x21, 3])
        #expect(Self.command(f, [0x0e]).prefix(2) == [0, 3])
        #expect(Self.command(f, [0x04, 0x00]) == [0x78], "unit 0 is drive B: write protected, track 0")
    }

    @Test("any command byte with any parameters leaves a state a snapshot takes back (no trap, no bound left)")
    func everyCommand() throws {
        var seed: UInt64 = 0x9e37_79b9_7f4a_7c15
        func next() -> UInt8 {
            seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17
            return UInt8(truncatingIfNeeded: seed)
        }
        let (f, _) = Self.controller()
        for c in 0...255 {
            for _ in 0..<4 {
                let bytes = [UInt8(c)] + (0..<20).map { _ in next() }
                for b in bytes { f.write(0x3f5, b) }
                for _ in 0..<16 { _ = f.read(0x3f5) }
                if next() & 7 == 0 { f.write(0x3f2, next()) }
                if next() & 7 == 0 { f.write(0x3f4, next() & 0xc3) }
                let s = f.saved
                #expect(FloppyState.refusal(s) == nil, "after command \(c): \(s.blobLine())")
                let blob = BuiltInDeviceState(floppy: s).encoded()
                #expect(try BuiltInDeviceState.decode(blob, version: 1, where: "t").floppy == s)
            }
        }
    }
}

/// The floppy controller's `floppy` line in the launcher's snapshot blob (Docs/SnapshotFormat.md).
@Suite("the floppy controller's state in a snapshot")
struct FloppyStateTests {
    typealias T = FloppyControllerTests

    /// The line of a controller as after power-on, with `replacing` words swapped in (1-based, `floppy` is 0).
    static func line(_ replacing: [Int: String] = [:]) -> String {
        var words = FloppyState().blobLine().split(separator: " ").map(String.init)
        for (i, w) in replacing { words[i] = w }
        return "vmm-launcher-devices 1\n" + words.joined(separator: " ") + "\nend\n"
    }

    /// `f`'s state through a blob into a new controller, whose line's moves are recorded.
    static func carried(_ f: FloppyController) throws -> (FloppyController, T.Levels) {
        let back = try BuiltInDeviceState.decode(BuiltInDeviceState(floppy: f.saved).encoded(), version: 1, where: "snap")
        #expect(back.floppy == f.saved)
        let (fresh, levels) = T.controller()
        fresh.restore(try #require(back.floppy))
        #expect(levels.all.isEmpty, "a restore drives no line")
        return (fresh, levels)
    }

    @Test("a result half read, and an interrupt pending, survive a snapshot into a new controller: the rest of the result; the sense that lowers the line; a blob without the line restores power-on")
    func roundTrip() throws {
        let (f, _) = T.controller()
        #expect(T.command(f, [0x03, 0xaf, 0x02]) == [] && T.command(f, [0x0f, 0x00, 7]) == [] && T.command(f, [0x08]) == [0x20, 7])
        f.write(0x3f5, 0x0e)
        let first = (0..<4).map { _ in f.read(0x3f5) }
        let (fresh, _) = try Self.carried(f)
        var rest: [UInt8] = []
        while fresh.read(0x3f4) & 0xc0 == 0xc0, rest.count < 16 { rest.append(fresh.read(0x3f5)) }
        #expect(first + rest == [7, 0, 0, 0, 0x0a, 0x03, 0xff, 0, 0x60, 0])
        #expect(T.command(fresh, [0x07, 0x00]) == [])
        let (again, levels) = try Self.carried(fresh)
        #expect(T.command(again, [0x08]) == [0x20, 0])
        #expect(levels.all == [false])
        let old = try BuiltInDeviceState.decode(Array("vmm-launcher-devices 1\nend\n".utf8), version: 1, where: "snap")
        #expect(old.floppy == nil)
        let devices = BuiltInDevices()
        devices.floppy = f
        #expect(devices.state.floppy != nil)
        try devices.restore(old)
        #expect(f.saved == FloppyState())
        #expect(devices.state.floppy == nil, "as after power-on: no line")
    }

    @Test("a damaged floppy line is refused in one line naming the value")
    func hostile() {
        let cases: [(String, String)] = [
            (Self.line([1: "0x0"]), "floppy: sra 0x0 (0x40, and the interrupt's 0x80)"),
            (Self.line([1: "0x100"]), "floppy sra '0x100'"),
            (Self.line([2: "0x80"]), "floppy: srb 0x80"),
            (Self.line([4: "0x2"]), "floppy: drive 0x2 (0 or 1)"),
            (Self.line([5: "0x8"]), "floppy: tdr 0x8"),
            (Self.line([7: "0xa0"]), "floppy: msr 0xa0 (only RQM, DIO and busy, 0xd0)"),
            (Self.line([7: "0xc0"]), "floppy: phase 1 with msr 0xc0"),
            (Self.line([9: "0x4"]), "floppy phase 0x4 (1 to 3)"),
            (Self.line([9: "0x3"]), "floppy: phase 3 with msr 0x80"),
            (Self.line([7: "0xd0", 9: "0x3", 11: "0x10"]), "fifo position 0 of 16 (a command takes at most 18 bytes, a result 15)"),
            (Self.line([10: "0x1"]), "floppy: phase 1 with msr 0x80, fifo position 1 of 1"),
            (Self.line([11: "0x13", 10: "0x12"]), "fifo position 18 of 19"),
            (Self.line([12: "0x5"]), "floppy: reset senses 5 (at most 4)"),
            (Self.line([17: "0x2"]), "floppy: lock 0x2 (0 or 1)"),
            (Self.line([19: "00"]), "floppy fifo: 2 hex digits, not 36"),
            (Self.line([20: "0200000000" + "0000000000"]), "a drive's head 0x2 or perpendicular mode 0x0"),
            (Self.line([20: "0000001000" + "0000000000"]), "perpendicular mode 0x10"),
            (Self.line([20: "zz00000000" + "0000000000"]), "floppy drives: not hex at digit 0"),
            ("vmm-launcher-devices 1\nfloppy 0x40\nend\n", "a device given twice, or the wrong number of values"),
        ]
        for (text, why) in cases {
            guard case let .failure(error) = BuiltInDeviceStateTests.decode(text) else { Issue.record("accepted: \(text)"); continue }
            #expect(error.message.hasPrefix("snap: launcher devices: ") && error.message.contains(why), "\(error.message)")
            #expect(!error.message.contains("\n"))
        }
        #expect((try? BuiltInDeviceStateTests.decode(Self.line()).get())?.floppy == FloppyState())
    }
}
