@testable import Launcher
import Testing

/// The secondary channel's empty CD-ROM drive (`ATAPIDrive`) as a guest's driver sees it
/// through its ports, against QEMU's hw/ide/core.c and hw/ide/atapi.c; the guest on real
/// KVM is `CDROMGuestTests`.
@Suite("the empty ATAPI CD-ROM drive's registers and commands")
struct ATAPIDriveTests {
    typealias Levels = ATADiskTests.Levels

    static func drive() -> (ATAPIDrive, Levels) {
        let d = ATAPIDrive(), levels = Levels()
        d.connectInterrupt { level in levels.m.withLock { $0.append(level) } }
        return (d, levels)
    }

    static func out(_ d: ATAPIDrive, _ port: UInt16, _ v: UInt8) { d.write(port, size: 1, UInt32(v)) }
    static func inb(_ d: ATAPIDrive, _ port: UInt16) -> UInt8 { UInt8(truncatingIfNeeded: d.read(port, size: 1)) }
    /// Error, count, LBA low, mid, high, select and status (which lowers IRQ 15).
    static func taskFile(_ d: ATAPIDrive) -> [UInt8] { (0x171...0x177).map { inb(d, UInt16($0)) } }

    /// `n` bytes through the data port, 2 a read.
    static func data(_ d: ATAPIDrive, _ n: Int) -> [UInt8] {
        (0..<(n + 1) / 2).flatMap { _ in let w = d.read(0x170, size: 2); return [UInt8(w & 0xff), UInt8(w >> 8)] }
    }

    /// PACKET with byte count limit `limit` and `cdb` (padded to 12 bytes), as libata
    /// sends it: the reason the drive asked the packet with.
    @discardableResult
    static func packet(_ d: ATAPIDrive, _ cdb: [UInt8], limit: UInt16 = 0x800, feature: UInt8 = 0) -> UInt8 {
        out(d, 0x176, 0xa0); out(d, 0x171, feature); out(d, 0x174, UInt8(limit & 0xff)); out(d, 0x175, UInt8(limit >> 8))
        out(d, 0x177, 0xa0)
        let reason = inb(d, 0x172)
        let bytes = cdb + [UInt8](repeating: 0, count: 12 - cdb.count)
        for i in stride(from: 0, to: 12, by: 2) { d.write(0x170, size: 2, UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8) }
        return reason
    }

    @Test("after power-on: status 0x50, error 0 and the packet device's signature (count 1, LBA low 1, mid 0x14, high 0xeb); the absent slave's error and status read 0, its registers its copy")
    func powerOn() {
        let (d, levels) = Self.drive()
        #expect(Self.taskFile(d) == [0x00, 0x01, 0x01, 0x14, 0xeb, 0xa0, 0x50])
        Self.out(d, 0x176, 0xb0)
        #expect(Self.taskFile(d) == [0x00, 0x01, 0x01, 0xff, 0xff, 0xb0, 0x00])
        Self.out(d, 0x177, 0xa1) // ignored: no slave
        #expect(d.read(0x376, size: 1) == 0 && levels.all.isEmpty)
    }

    @Test("SRST: status 0, error 1, the signature, IRQ 15 unless nIEN; EXECUTE DEVICE DIAGNOSTIC the same with no interrupt; IDENTIFY DEVICE and READ SECTORS abort with the signature; other ATA commands abort; SET FEATURES takes QEMU's list")
    func ataCommands() {
        let (d, levels) = Self.drive()
        Self.out(d, 0x174, 0x55); Self.out(d, 0x376, 0x04)
        #expect(Self.taskFile(d) == [0x01, 0x01, 0x01, 0x14, 0xeb, 0xa0, 0x00])
        #expect(levels.all == [true, false])
        Self.out(d, 0x376, 0x02); Self.out(d, 0x376, 0x06) // nIEN: no interrupt
        #expect(levels.all == [true, false])
        Self.out(d, 0x376, 0x02)
        for c: UInt8 in [0xec, 0x20] {
            Self.out(d, 0x174, 0x00); Self.out(d, 0x175, 0x08)
            Self.out(d, 0x177, c)
            #expect(Self.taskFile(d) == [0x04, 0x01, 0x01, 0x14, 0xeb, 0xa0, 0x41], "command \(c)")
        }
        for c: UInt8 in [0xc8, 0x30, 0x24, 0xe7, 0xe5, 0x00] {
            Self.out(d, 0x177, c)
            #expect([Self.inb(d, 0x171), Self.inb(d, 0x177)] == [0x04, 0x41], "command \(c)")
        }
        Self.out(d, 0x174, 0x12); Self.out(d, 0x177, 0x90)
        #expect(Self.taskFile(d) == [0x01, 0x01, 0x01, 0x14, 0xeb, 0xa0, 0x00])
        for (feature, status): (UInt8, UInt8) in [(0x02, 0x50), (0xaa, 0x50), (0x82, 0x41), (0x33, 0x41)] {
            Self.out(d, 0x171, feature); Self.out(d, 0x177, 0xef)
            #expect(Self.inb(d, 0x177) == status, "feature \(feature)")
        }
        Self.out(d, 0x171, 0x03); Self.out(d, 0x172, 0x0c); Self.out(d, 0x177, 0xef) // PIO mode 4
        #expect(Self.inb(d, 0x177) == 0x50)
        Self.out(d, 0x171, 0x03); Self.out(d, 0x172, 0x30); Self.out(d, 0x177, 0xef) // no such mode
        #expect(Self.inb(d, 0x177) == 0x41)
    }

    @Test("IDENTIFY PACKET DEVICE: QEMU's 512 bytes (ATAPI CD-ROM, removable, 12-byte packets; serial QM00003, firmware 2.5+, model QEMU DVD-ROM; no DMA words) with IRQ 15; then the data port reads 0")
    func identifyPacket() {
        let (d, levels) = Self.drive()
        Self.out(d, 0x177, 0xa1)
        #expect(Self.inb(d, 0x376) == 0x58 && levels.all == [true])
        let b = Self.data(d, 512)
        func word(_ i: Int) -> UInt16 { UInt16(b[2 * i]) | UInt16(b[2 * i + 1]) << 8 }
        func text(_ from: Int, _ words: Int) -> String { String(decoding: (from..<from + words).flatMap { [b[2 * $0 + 1], b[2 * $0]] }, as: UTF8.self) }
        #expect(word(0) == 0x85c0)
        #expect(text(10, 10) == "QM00003" + String(repeating: " ", count: 13))
        #expect(text(23, 4) == "2.5+    ")
        #expect(text(27, 20) == "QEMU DVD-ROM" + String(repeating: " ", count: 28))
        #expect([48, 49, 53, 62, 63, 64, 80, 88].map(word) == [1, 0x200, 3, 0, 0, 3, 0x1e, 0])
        #expect(Self.inb(d, 0x177) == 0x50 && d.read(0x170, size: 2) == 0)
    }

    @Test("TEST UNIT READY: the packet asked with reason 1 and no interrupt, then CHECK CONDITION: status 0x41, error 0x20 (NOT READY), reason 3, IRQ 15; REQUEST SENSE gives 18 bytes (sense 2, MEDIUM NOT PRESENT) cut to the allocation length, and keeps the sense; READ CAPACITY and READ(10) are NOT READY too; an unknown opcode is ILLEGAL REQUEST / INVALID COMMAND OPERATION CODE")
    func packetCommands() {
        let (d, levels) = Self.drive()
        Self.out(d, 0x376, 0x00)
        #expect(Self.packet(d, [0x00]) == 0x01)
        #expect(levels.all == [true], "one interrupt, at the command's end")
        #expect([Self.inb(d, 0x171), Self.inb(d, 0x172), Self.inb(d, 0x177)] == [0x20, 0x03, 0x41])
        var sense = [UInt8](repeating: 0, count: 18)
        (sense[0], sense[2], sense[7], sense[12]) = (0xf0, 2, 10, 0x3a)
        for allocation: UInt8 in [18, 255, 8] {
            Self.packet(d, [0x03, 0, 0, 0, allocation])
            let n = min(Int(allocation), 18)
            #expect([Self.inb(d, 0x172), Self.inb(d, 0x174), Self.inb(d, 0x175), Self.inb(d, 0x376)] == [0x02, UInt8(n), 0, 0x58])
            #expect(Self.data(d, n) == Array(sense.prefix(n)))
            #expect([Self.inb(d, 0x171), Self.inb(d, 0x172), Self.inb(d, 0x177)] == [0x00, 0x03, 0x50])
        }
        for op: UInt8 in [0x25, 0x28, 0xa8, 0x43, 0x51, 0xbe, 0x2b] {
            Self.packet(d, [op, 0, 0, 0, 0, 0, 0, 0, 1])
            #expect([Self.inb(d, 0x171), Self.inb(d, 0x177)] == [0x20, 0x41], "opcode \(op)")
        }
        Self.packet(d, [0xff])
        #expect([Self.inb(d, 0x171), Self.inb(d, 0x172), Self.inb(d, 0x177)] == [0x50, 0x03, 0x41])
        Self.packet(d, [0x03, 0, 0, 0, 18])
        let ill = Self.data(d, 18)
        #expect([ill[2], ill[12]] == [5, 0x20])
    }

    @Test("INQUIRY: QEMU's 36 bytes (type 5, removable, vendor QEMU, product QEMU DVD-ROM, revision 2.5+); EVPD pages 0 and 0x83, others ILLEGAL REQUEST")
    func inquiry() {
        let (d, _) = Self.drive()
        Self.packet(d, [0x12, 0, 0, 0, 96])
        let b = Self.data(d, 36)
        #expect(Array(b.prefix(8)) == [5, 0x80, 0, 0x21, 31, 0, 0, 0])
        #expect(String(decoding: b[8..<36], as: UTF8.self) == "QEMU    QEMU DVD-ROM    2.5+")
        #expect(Self.inb(d, 0x177) == 0x50)
        Self.packet(d, [0x12, 1, 0, 0, 255])
        #expect(Self.data(d, 6) == [5, 0, 0, 2, 0, 0x83])
        Self.packet(d, [0x12, 1, 0x83, 0, 255])
        let page = Self.data(d, 100)
        #expect(Array(page.prefix(8)) == [5, 0x83, 0, 96, 2, 0, 0, 20] && String(decoding: page[32..<40], as: UTF8.self) == "ATA     ")
        Self.packet(d, [0x12, 1, 0x83, 0, 27])
        #expect([Self.inb(d, 0x171), Self.inb(d, 0x177)] == [0x50, 0x41])
        Self.packet(d, [0x12, 1, 0x80, 0, 255])
        #expect([Self.inb(d, 0x171), Self.inb(d, 0x177)] == [0x50, 0x41])
    }

    @Test("the byte count limit: a reply in DRQ blocks of at most the limit (made even when it cuts), each with reason 2, its size in LBA mid and high, and IRQ 15; a zero limit aborts a data command with no interrupt; a limit of 1 leaves an empty block pending until DEVICE RESET")
    func byteCountLimit() {
        let (d, levels) = Self.drive()
        Self.out(d, 0x376, 0x00)
        Self.packet(d, [0x03, 0, 0, 0, 18], limit: 7)
        var got: [UInt8] = []
        for size in [6, 6, 6] {
            #expect([Self.inb(d, 0x172), Self.inb(d, 0x174), Self.inb(d, 0x177)] == [0x02, UInt8(size), 0x58])
            got += Self.data(d, size)
        }
        #expect(got.count == 18 && got[2] == 0 && got[0] == 0xf0)
        #expect(Self.inb(d, 0x177) == 0x50 && levels.all.filter { $0 }.count == 4, "a block's interrupt each, and the end's: \(levels.all)")
        Self.packet(d, [0x12, 0, 0, 0, 36], limit: 0)
        #expect([Self.inb(d, 0x171), Self.inb(d, 0x376)] == [0x04, 0x41])
        Self.packet(d, [0x00], limit: 0) // a command with no data takes a zero limit
        #expect([Self.inb(d, 0x171), Self.inb(d, 0x177)] == [0x20, 0x41])
        Self.packet(d, [0x12, 0, 0, 0, 36], limit: 1)
        #expect([Self.inb(d, 0x174), Self.inb(d, 0x376)] == [0, 0x58])
        #expect(d.read(0x170, size: 2) == 0 && d.read(0x170, size: 4) == 0 && Self.inb(d, 0x376) == 0x58)
        Self.out(d, 0x177, 0x12) // ignored while DRQ
        #expect(Self.inb(d, 0x376) == 0x58)
        Self.out(d, 0x177, 0x08) // DEVICE RESET is taken
        #expect(Self.taskFile(d) == [0x00, 0x01, 0x01, 0x14, 0xeb, 0xa0, 0x00])
        // An odd block (all the reply, under the limit) cannot finish: 2-byte reads stop short.
        Self.packet(d, [0x03, 0, 0, 0, 5])
        #expect(Self.data(d, 4) == [0xf0, 0, 0, 0] && d.read(0x170, size: 2) == 0 && Self.inb(d, 0x376) == 0x58)
        Self.out(d, 0x376, 0x04); Self.out(d, 0x376, 0x00)
        #expect(Self.inb(d, 0x177) == 0x00)
    }

    @Test("the tray: START STOP UNIT opens and closes it unless PREVENT ALLOW MEDIUM REMOVAL locked it; GET EVENT STATUS NOTIFICATION reports it, MODE SENSE's capabilities page the lock; GET CONFIGURATION has no current profile")
    func tray() {
        let (d, _) = Self.drive()
        Self.packet(d, [0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8])
        #expect(Self.data(d, 8) == [0, 4, 4, 0x10, 0, 0, 0, 0])
        Self.packet(d, [0x1b, 0, 0, 0, 2]) // eject
        #expect(Self.inb(d, 0x177) == 0x50)
        Self.packet(d, [0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8])
        #expect(Self.data(d, 8)[5] == 1)
        Self.packet(d, [0x1b, 0, 0, 0, 3]) // load
        Self.packet(d, [0x1e, 0, 0, 0, 1]) // lock
        Self.packet(d, [0x1b, 0, 0, 0, 2])
        #expect([Self.inb(d, 0x171), Self.inb(d, 0x177)] == [0x50, 0x41])
        Self.packet(d, [0x03, 0, 0, 0, 18])
        #expect(Self.data(d, 18)[12] == 0x53)
        Self.packet(d, [0x5a, 0, 0x2a, 0, 0, 0, 0, 0, 30])
        let caps = Self.data(d, 30)
        #expect(Array(caps.prefix(10)) == [0, 28, 0x70, 0, 0, 0, 0, 0, 0x2a, 20] && caps[14] == 0x2b)
        Self.packet(d, [0x46, 0, 0, 0, 0, 0, 0, 0, 255])
        #expect(Self.data(d, 20) == [0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 3, 8, 0, 0x10, 0, 0, 0, 0x08, 0, 0])
        Self.packet(d, [0x4a, 0, 0, 0, 0x10, 0, 0, 0, 8]) // not polled
        #expect(Self.inb(d, 0x177) == 0x41)
    }

    @Test("any packet a guest sends (every opcode, any bytes, any limit), any port access in any phase: no trap, the state one a snapshot restores, read back the same through the blob")
    func hostile() throws {
        var seed: UInt64 = 0x9e37_79b9_7f4a_7c15
        func next() -> UInt8 { seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407; return UInt8(truncatingIfNeeded: seed >> 33) }
        let (d, _) = Self.drive()
        for op in 0...255 {
            for limit: UInt16 in [0, 1, 3, 0xffff, 0x800] {
                Self.packet(d, [UInt8(op)] + (1..<12).map { _ in next() }, limit: limit, feature: next() & 1 == 0 ? 0 : next())
                for _ in 0..<4 {
                    let port = [0x170, 0x171, 0x172, 0x174, 0x175, 0x176, 0x177, 0x376][Int(next() & 7)]
                    let size = [1, 2, 4][Int(next() % 3)]
                    if next() & 1 == 0 { _ = d.read(UInt16(port), size: size) } else if port != 0x376 || next() & 4 == 0 { d.write(UInt16(port), size: size, UInt32(next())) }
                }
                let saved = d.saved
                let back = try BuiltInDeviceState.decode(BuiltInDeviceState(atapi: saved).encoded(), version: 1, where: "t")
                #expect(back.atapi == saved, "opcode \(op) limit \(limit)")
                if back.atapi != saved { return }
                if Self.inb(d, 0x376) & 0x08 != 0 { Self.out(d, 0x177, 0x08) }
            }
        }
    }
}
