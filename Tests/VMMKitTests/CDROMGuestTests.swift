import Testing

/// QEMU's `pc` has an empty ATAPI CD-ROM drive as the secondary channel's master; a guest
/// written for QEMU (Examples/GuestImages/qemu/cdrom.S) probes it as a BIOS and Linux's
/// libata do and finds what it finds under QEMU; a packet command's reply in flight
/// survives a snapshot and a restore in a new process (Examples/GuestImages/qemu/cdromsnap.S).
@Suite("the secondary IDE channel's empty CD-ROM drive on real KVM", .serialized, .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct CDROMGuestTests {
    static let guest = VMMProcess.guest("cdrom.elf")

    /// What QEMU's drive gives the probe (hw/ide/core.c, hw/ide/atapi.c): the packet
    /// device signature after SRST, IDENTIFY DEVICE aborted, QEMU's identify strings for
    /// its third IDE unit (space-padded to 40, 20 and 8), TEST UNIT READY's CHECK
    /// CONDITION (NOT READY) on IRQ 15, REQUEST SENSE's MEDIUM NOT PRESENT, INQUIRY's
    /// CD-ROM type, vendor and product (8 and 16 characters).
    static func padded(_ s: String, _ n: Int) -> String { s + String(repeating: " ", count: n - s.count) }
    static let probe = "reset: status 00 error 01 signature 01 01 14 EB \n"
        + "identify device: status 41 error 04 signature 14 EB\n"
        + "identify packet: \(padded("QEMU DVD-ROM", 40))|\(padded("QM00003", 20))|\(padded("2.5+", 8))\n"
        + "test unit ready: packet reason 01 irq 15: status 41 error 20 reason 03\n"
        + "request sense: reason 02 bytes 0012 code F0 key 02 asc 3A then status 50 reason 03\n"
        + "inquiry: type 05 removable 80 \(padded("QEMU", 8))\(padded("QEMU DVD-ROM", 16))\n"

    @Test("the guest finds the drive's signature, its identify data, NOT READY / MEDIUM NOT PRESENT on IRQ 15 and its INQUIRY data, every port a device's (--strict-io)")
    func probe() throws {
        for extra in [[], ["--strict-io"]] {
            let r = try PluginListingTests.run(["run", Self.guest] + extra, bound: 120)
            #expect(r.stdout == Self.probe)
            #expect(r.status == (0x21 << 1) | 1, "stderr: \(r.stderr)")
        }
    }

    static let snapGuest = VMMProcess.guest("cdromsnap.elf")
    static let done: Int32 = (0x21 << 1) | 1

    /// INQUIRY's device identification page (EVPD 0x83) as QEMU's drive gives it for 100
    /// bytes: the serial (ASCII, vendor specific), then "ATA", the model and the serial (T10).
    static let identification: [UInt8] = [5, 0x83, 0, 96, 2, 0, 0, 20] + Array(padded("QM00003", 20).utf8) + [2, 1, 0, 68]
        + Array((padded("ATA", 8) + padded("QEMU DVD-ROM", 40) + padded("QM00003", 20)).utf8)

    /// What cdromsnap.S prints: the tray locked, TEST UNIT READY's NOT READY, the page in
    /// DRQ blocks of the 16-byte limit it set (reason 2, each block's size and bytes), the
    /// command's end (reason 3), the page's text, then the sense and the lock, still there.
    static let reply: [String] = {
        let hex = { (b: ArraySlice<UInt8>) in b.map { String($0, radix: 16, uppercase: true) }.map { $0.count == 1 ? "0" + $0 : $0 }.joined() }
        let blocks = stride(from: 0, to: identification.count, by: 16).map { at in
            let block = identification[at..<min(at + 16, identification.count)]
            return "block: reason 02 bytes 00\(block.count == 16 ? "10" : "04") | \(hex(block))\n"
        }
        return ["lock: error 00 reason 03 status 50\n", "test unit ready: error 20 reason 03 status 41\n"] + blocks + [
            "inquiry: error 00 reason 03 status 50\n",
            "text: \(padded("QM00003", 20)) | ATA     \(padded("QEMU DVD-ROM", 40))\(padded("QM00003", 20))\n",
            "request sense: key 02 asc 3A\n",
            "capabilities: byte 6 2B\n",
        ]
    }()

    @Test("a packet command's reply stopped half-way through its fourth DRQ block survives a snapshot: restored in a new process, the guest reads the rest as an uninterrupted run does, the sense and the tray lock kept")
    func snapshotMidReply() throws {
        let whole = try PluginListingTests.run(["run", Self.snapGuest, "--strict-io"], bound: 120)
        #expect(whole.stdout == Self.reply.joined())
        #expect(whole.status == Self.done, "stderr: \(whole.stderr)")
        // Paused after the lock, TEST UNIT READY, three blocks and 4 bytes of the fourth.
        let dir = try VMMProcess.scratch("cdrom", "snapshot")
        let head = Self.reply.prefix(5).joined()
        let (snap, saved) = try ATAGuestTests.snapshotWaiting(Self.snapGuest, disk: nil, dir: dir, printed: head + "reading, waiting for a key\n")
        // DRQ, reason 2, a 16-byte block; the sense NOT READY / MEDIUM NOT PRESENT, the
        // tray locked, the reply in flight at byte 0x34 of the block ending at 0x40.
        #expect(saved.contains("\natapi 0x58 0x0 0x0 0x2 0x1 0x10 0x0 "), "\(saved)")
        #expect(saved.contains(" 0x2 0x3a 2 3 0x34 0x40 058300600200001451"), "\(saved)")
        let restored = try PluginListingTests.run(["restore", snap, "--serial", "stdio", "--max-seconds", "60"], bound: 120)
        #expect(restored.stdout == Self.reply.dropFirst(5).joined())
        #expect(whole.stdout == head + restored.stdout)
        #expect(restored.stderr == "")
        #expect(restored.status == Self.done)
    }
}
