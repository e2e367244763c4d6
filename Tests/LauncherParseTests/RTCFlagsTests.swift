import Glibc
@testable import Launcher
import Testing

/// The RTC's register C as a guest polls it (no irqchip here, so no IRQ 8): "periodic"
/// follows register B's enable and register A's rate. The update cycle and the
/// interrupts run against real guests (`QEMUCompatTests`).
@Suite("the RTC's register C, polled")
struct RTCFlagsTests {
    static func select(_ rtc: RTC, _ register: Int) { rtc.access(port: RTC.indexPort, write: UInt8(register)) }
    static func read(_ rtc: RTC, _ register: Int) -> UInt8 { select(rtc, register); return rtc.access(port: RTC.dataPort, write: nil) }
    static func write(_ rtc: RTC, _ register: Int, _ value: UInt8) { select(rtc, register); rtc.access(port: RTC.dataPort, write: value) }

    /// Spins until `micros` of the host's monotonic clock have passed: the condition the
    /// flags depend on, not a sleep.
    static func pass(micros: Int64) {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        let end = Int64(t.tv_sec) * 1_000_000 + Int64(t.tv_nsec) / 1000 + micros
        repeat { clock_gettime(CLOCK_MONOTONIC, &t) } while Int64(t.tv_sec) * 1_000_000 + Int64(t.tv_nsec) / 1000 < end
    }

    @Test("CMOS 0x37 (IBM PS/2 century byte) is the century register 0x32, read and written, as QEMU's")
    func ps2CenturyAlias() {
        let rtc = RTC(cpus: 1, lowRAM: 1 << 20, highRAM: 0)
        let century = Self.read(rtc, RTC.century)
        #expect(century == 0x20)
        #expect(Self.read(rtc, 0x37) == century)
        Self.write(rtc, RTC.registerB, 0x82) // SET: the time registers hold what is written
        Self.write(rtc, 0x37, 0x19)
        #expect(Self.read(rtc, RTC.century) == 0x19)
        #expect(rtc.ram[0x37] == 0)
    }

    @Test("'periodic' (0x40) is set only while register B enables it, once a period of register A's rate has passed, with 'IRQ' (0x80); 'alarm' never")
    func periodic() {
        let rtc = RTC(cpus: 1, lowRAM: 1 << 20, highRAM: 0)
        Self.write(rtc, RTC.registerA, 0x23) // rate 3: a period of 4 ticks, 122 µs
        _ = Self.read(rtc, RTC.registerC)
        Self.pass(micros: 2000)
        #expect(Self.read(rtc, RTC.registerC) & 0x40 == 0, "periodic without register B's enable")
        Self.write(rtc, RTC.registerB, 0x42) // periodic enabled, 24-hour
        _ = Self.read(rtc, RTC.registerC)
        Self.pass(micros: 2000)
        let c = Self.read(rtc, RTC.registerC)
        #expect(c & 0x40 != 0, "no periodic flag after 16 periods")
        #expect(c & 0x80 != 0, "no IRQ flag for an enabled periodic interrupt: \(c)")
        #expect(c & 0x2f == 0, "\(c)")
        Self.write(rtc, RTC.registerA, 0x20) // rate 0: no periods
        _ = Self.read(rtc, RTC.registerC)
        Self.pass(micros: 2000)
        #expect(Self.read(rtc, RTC.registerC) & 0x40 == 0, "periodic at rate 0")
    }

    /// A flag the guest has not read when the snapshot is taken is read in the new
    /// process: without it, an alarm that rang just before a snapshot never reached the
    /// restored guest (the next one comes a day later).
    @Test("a flag not read before a snapshot is read after the restore, with 'IRQ' where register B enables it, and once")
    func flagsThroughSnapshot() throws {
        let rtc = RTC(cpus: 1, lowRAM: 1 << 20, highRAM: 0)
        Self.write(rtc, RTC.registerA, 0x23) // rate 3: a period of 122 µs
        Self.write(rtc, RTC.registerB, 0xc2) // SET (no update or alarm flags), periodic enabled, 24-hour
        _ = Self.read(rtc, RTC.registerC)
        Self.pass(micros: 2000)
        var saved = rtc.state
        #expect(saved.ram[RTC.registerC] == 0x40, "the snapshot's register C: \(saved.ram[RTC.registerC])")
        // The blob as `vmm restore` reads it, into a new RTC whose own periods cannot set
        // the flag again (rate 0): what it reads came from the snapshot.
        saved.ram[RTC.registerA] = 0x20
        let blob = BuiltInDeviceState(rtc: saved).encoded()
        let back = try #require(try? BuiltInDeviceState.decode(blob, version: 1, where: "test").rtc)
        let restored = RTC(cpus: 1, lowRAM: 1 << 20, highRAM: 0)
        restored.restore(back)
        #expect(restored.state.ram[RTC.registerC] == 0x40)
        #expect(Self.read(restored, RTC.registerC) == 0xc0)
        #expect(Self.read(restored, RTC.registerC) == 0, "read twice")
        #expect(restored.state.ram[RTC.registerC] == 0)
        // The same state with register C clear (a snapshot from before the flag was kept).
        var clear = back
        clear.ram[RTC.registerC] = 0
        let old = RTC(cpus: 1, lowRAM: 1 << 20, highRAM: 0)
        old.restore(clear)
        #expect(Self.read(old, RTC.registerC) == 0)
    }
}

/// The drive bytes of QEMU's `pc_cmos_init_late` (hw/i386/pc.c) for the disk's geometry.
@Suite("the RTC's CMOS hard-disk bytes")
struct RTCHardDiskTests {
    @Test("a disk of at most 1024 cylinders: no translation in 0x39; more: LBA (1); a partition table's >16 heads: LARGE (2); 8 heads or fewer: control byte 0xc0")
    func translation() {
        let small = RTC(cpus: 1, lowRAM: 1 << 20, highRAM: 0)
        small.setHardDisk(ATAGeometry(mbr: ATAGeometryTests.mbr(endHead: 7, endSector: 63), sectors: 1024 * 8 * 63))
        #expect(small.ram[0x12] == 0xf0 && small.ram[0x19] == 47 && small.ram[0x39] == 0)
        #expect(Array(small.ram[0x1b...0x23]) == [0x00, 0x04, 8, 0xff, 0xff, 0xc0, 0x00, 0x04, 63])
        let large = RTC(cpus: 1, lowRAM: 1 << 20, highRAM: 0)
        large.setHardDisk(ATAGeometry(sectors: 16383 * 16 * 63))
        #expect(large.ram[0x39] == 1 && Array(large.ram[0x1b...0x23]) == [0xff, 0x3f, 16, 0xff, 0xff, 0xc8, 0xff, 0x3f, 63])
        let translated = RTC(cpus: 1, lowRAM: 1 << 20, highRAM: 0)
        translated.setHardDisk(ATAGeometry(mbr: ATAGeometryTests.mbr(endHead: 254, endSector: 63), sectors: 1100 * 16 * 63))
        #expect(translated.ram[0x39] == 2 && Array(translated.ram[0x1b...0x23]) == [0x4c, 0x04, 16, 0xff, 0xff, 0xc8, 0x4c, 0x04, 63])
    }
}
