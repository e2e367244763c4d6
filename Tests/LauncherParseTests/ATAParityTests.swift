@testable import Launcher
import Testing

/// Where the IDE disk answers as QEMU's `hw/ide/core.c` and `hd-geometry.c` do, found by
/// comparing the two: the absent slave's registers, access widths, the signature, the
/// power and verify commands, the geometry of a small disk.
@Suite("the ATA disk as QEMU's, register by register")
struct ATAParityTests {
    typealias T = ATADiskTests

    @Test("the slave's copy of the task file: writes reach it, the master's commands do not, SRST gives it no device's signature; a snapshot keeps it")
    func slaveCopy() throws {
        let (d, _, _) = T.disk(sectors: 300)
        T.out(d, 0x1f6, 0xb5)
        for (port, v) in [(UInt16(0x1f2), UInt8(0x11)), (0x1f3, 0x22), (0x1f4, 0x33), (0x1f5, 0x44)] { T.out(d, port, v) }
        T.out(d, 0x1f6, 0xe0)
        T.out(d, 0x1f7, 0xf8) // READ NATIVE MAX ADDRESS: the master's task file only
        #expect((0x1f2...0x1f6).map { T.inb(d, UInt16($0)) } == [0x11, 0x2b, 0x01, 0x00, 0xe0])
        T.out(d, 0x1f6, 0xf0)
        #expect((0x1f2...0x1f6).map { T.inb(d, UInt16($0)) } == [0x11, 0x22, 0x33, 0x44, 0xf0])
        T.out(d, 0x3f6, 0x80) // HOB: the values written before
        #expect((0x1f2...0x1f5).map { T.inb(d, UInt16($0)) } == [0x01, 0x01, 0xff, 0xff])
        T.out(d, 0x3f6, 0x00)
        let saved = d.saved
        let back = try BuiltInDeviceState.decode(BuiltInDeviceState(ata: saved).encoded(), version: 1, where: "snap")
        #expect(back.ata == saved && saved.state.slave.lbaHigh == 0x44)
        let (other, _, _) = T.disk(sectors: 300)
        other.restore(saved)
        #expect((0x1f2...0x1f6).map { T.inb(other, UInt16($0)) } == [0x11, 0x22, 0x33, 0x44, 0xf0])
        T.out(d, 0x3f6, 0x04); T.out(d, 0x3f6, 0x00) // SRST
        T.out(d, 0x1f6, 0xb0)
        #expect((0x1f1...0x1f7).map { T.inb(d, UInt16($0)) } == [0, 0x01, 0x01, 0xff, 0xff, 0xb0, 0])
    }

    @Test("a 4-byte access to a byte register reads all-ones and writes nothing; a 2-byte one is two bytes, all-ones past 0x1f7 and 0x3f6; the data port keeps its 4-byte PIO")
    func accessWidths() {
        let (d, _, levels) = T.disk()
        d.write(0x1f4, size: 4, 0xec00_0000) // its top byte was IDENTIFY in the command register
        #expect(levels.all.isEmpty && T.inb(d, 0x1f7) == 0x50)
        #expect([T.inb(d, 0x1f4), T.inb(d, 0x1f5), T.inb(d, 0x1f6)] == [0x00, 0x00, 0xa0])
        T.out(d, 0x1f7, 0xe5) // CHECK POWER MODE: IRQ 14 up
        #expect(d.read(0x1f4, size: 4) == 0xffff_ffff)
        #expect(levels.all == [true], "a 4-byte read reached the status register")
        #expect(d.read(0x1f6, size: 2) == 0x50a0, "device/head, then the status, which lowers the line")
        #expect(levels.all == [true, false])
        #expect(d.read(0x1f7, size: 2) == 0xff50)
        #expect(d.read(0x3f6, size: 2) == 0xff50 && d.read(0x3f6, size: 4) == 0xffff_ffff)
        d.write(0x1f2, size: 2, 0x0302)
        #expect([T.inb(d, 0x1f2), T.inb(d, 0x1f3)] == [0x02, 0x03])
        d.write(0x3f6, size: 4, 0x02) // dropped: nIEN stays clear
        T.out(d, 0x1f7, 0xe5)
        #expect(levels.all == [true, false, true])
        T.lba28(d, 0x20, lba: 5, count: 1)
        #expect(d.read(0x1f0, size: 4) == 0xa5a5_a505, "the data port's 32-bit PIO")
        // The empty secondary channel answers by the same widths.
        #expect([1, 2, 4].map { IDEChannel.emptyRead(4, size: $0) } == [0, 0, 0xffff_ffff])
        #expect([1, 2, 4].map { IDEChannel.emptyRead(0, size: $0) } == [0xff, 0, 0])
        #expect([1, 2, 4].map { IDEChannel.emptyRead(8, size: $0) } == [0, 0xff00, 0xffff_ffff])
        #expect(IDEChannel.emptyRead(7, size: 2) == 0xff00)
    }

    @Test("task-file writes are dropped while DRQ is set, as QEMU's; a command too")
    func writesDuringDRQ() {
        let (d, _, _) = T.disk()
        T.lba28(d, 0x20, lba: 3, count: 1)
        T.out(d, 0x1f3, 0x77); T.out(d, 0x1f6, 0xb0)
        #expect([T.inb(d, 0x1f3), T.inb(d, 0x1f6), T.inb(d, 0x1f7)] == [0x04, 0xe0, 0x58])
        #expect(T.sector(d).first == 3)
        T.out(d, 0x1f3, 0x77)
        #expect(T.inb(d, 0x1f3) == 0x77)
    }

    @Test("EXECUTE DEVICE DIAGNOSTIC keeps select's LBA bit and clears its head, as QEMU's ide_set_signature; SRST leaves 0xa0")
    func signatureSelect() {
        let (d, _, _) = T.disk()
        T.out(d, 0x1f6, 0xe5)
        T.out(d, 0x1f7, 0x90)
        #expect((0x1f1...0x1f7).map { T.inb(d, UInt16($0)) } == [0x01, 0x01, 0x01, 0x00, 0x00, 0xe0, 0x50])
        T.out(d, 0x1f6, 0xe5)
        T.out(d, 0x3f6, 0x04); T.out(d, 0x3f6, 0x00)
        #expect(T.inb(d, 0x1f6) == 0xa0)
    }

    @Test("standby, idle and sleep complete with DRDY alone (0x40) and an interrupt; CHECK POWER MODE and SEEK with DSC; RECALIBRATE is 0x10 only")
    func powerCommands() {
        let (d, _, levels) = T.disk()
        for c: UInt8 in [0xe0, 0xe1, 0xe2, 0xe3, 0x94, 0x95, 0x96, 0x97, 0xe6, 0x99] {
            T.out(d, 0x1f7, c)
            #expect([T.inb(d, 0x1f7), T.inb(d, 0x1f1)] == [0x40, 0x00], "command \(hex(c))")
        }
        #expect(levels.all == Array(repeating: [true, false], count: 10).flatMap { $0 })
        for c: UInt8 in [0xe5, 0x98, 0x70, 0x10, 0x91] {
            T.out(d, 0x1f7, c)
            #expect(T.inb(d, 0x1f7) == 0x50, "command \(hex(c))")
        }
        T.out(d, 0x1f7, 0x1f)
        #expect([T.inb(d, 0x1f7), T.inb(d, 0x1f1)] == [0x41, 0x04])
    }

    @Test("READ VERIFY succeeds wherever it points, past the end too (QEMU's cmd_verify checks no sector)")
    func verifyAnywhere() {
        let (d, _, levels) = T.disk(sectors: 16)
        T.lba28(d, 0x40, lba: 15, count: 2)
        #expect([T.inb(d, 0x1f7), T.inb(d, 0x1f1)] == [0x50, 0x00])
        T.lba48(d, 0x42, lba: 0x1000, count: 1)
        #expect([T.inb(d, 0x1f7), T.inb(d, 0x1f1)] == [0x50, 0x00])
        #expect(levels.all == [true, false, true, false])
    }

    @Test("a disk under 2016 sectors has 2 cylinders, as QEMU's guess_chs_for_size: IDENTIFY words 1, 54, 57-58")
    func smallGeometry() {
        let (d, _, _) = T.disk(sectors: 100)
        T.out(d, 0x1f7, 0xec)
        let data = T.sector(d)
        func word(_ i: Int) -> UInt16 { UInt16(data[2 * i]) | UInt16(data[2 * i + 1]) << 8 }
        #expect([word(1), word(54), word(57), word(58)] == [2, 2, 2016, 0])
        #expect(ATAGeometry(sectors: 1).cylinders == 2 && ATAGeometry(sectors: 1008 * 3).cylinders == 3)
    }

    @Test("SRST completes while still set, as QEMU's ide_bus_perform_srst: status 0x50, error 0x01 (the diagnostic), the signature, IRQ 14 unless nIEN; its release changes nothing")
    func softResetCompletesWhileSet() {
        let (d, _, levels) = T.disk()
        T.lba28(d, 0x20, lba: 3, count: 2) // a read in flight, its IRQ raised
        #expect(T.inb(d, 0x1f7) == 0x58, "reading status lowers IRQ 14")
        T.out(d, 0x3f6, 0x04) // SRST, interrupts enabled
        #expect(T.inb(d, 0x3f6) == 0x50, "not busy while SRST is still set")
        #expect((0x1f1...0x1f6).map { T.inb(d, UInt16($0)) } == [0x01, 0x01, 0x01, 0x00, 0x00, 0xa0])
        #expect(d.read(0x1f0, size: 2) == 0, "the transfer ended")
        #expect(levels.all.last == true, "IRQ 14 for the reset")
        #expect(T.inb(d, 0x1f7) == 0x50)
        T.out(d, 0x1f2, 0x33)
        T.out(d, 0x3f6, 0x00) // released: no second reset, which would give the signature's count 1
        #expect(T.inb(d, 0x1f2) == 0x33 && levels.all.last == false)
        T.out(d, 0x3f6, 0x06) // SRST with nIEN: no interrupt
        #expect(levels.all.last == false && T.inb(d, 0x1f7) == 0x50)
    }
}
