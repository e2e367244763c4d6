import Testing

/// QEMU's `pc` has a floppy controller at 0x3f0 with an empty drive A (the CMOS's 0x10 =
/// 0x50 names it); a guest written for QEMU (Examples/GuestImages/qemu/floppy.S) probes
/// it as a driver does and finds what it finds under QEMU; a result half read survives a
/// snapshot and a restore in a new process.
@Suite("the floppy controller with an empty drive A on real KVM", .serialized, .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct FloppyGuestTests {
    static let guest = VMMProcess.guest("floppy.elf")
    static let done: Int32 = (0x23 << 1) | 1

    /// What QEMU's controller gives the probe (hw/block/fdc.c): ready for a command, DOR
    /// 0x0c, the disk change line; the reset's four ready-changed senses on IRQ 6; an
    /// 82078's version; SPECIFY's timers and DMA bit in DUMPREG with the empty drive's 255
    /// sectors and CONFIGURE's 0x60; seek ends (0x20) at tracks 0 and 10 on IRQ 6, drive A
    /// ready and two-sided (0x28); READ DATA's abnormal termination (0x40) on IRQ 6 with
    /// the place asked for; drive B write protected at track 0 (0x79); invalid commands.
    static let lines = [
        "registers: msr 80 dor 0C tdr 00 srb C0 dir 80\n",
        "reset: irq 6, sense C0 00 C1 00 C2 00 C3 00\n",
        "version 90\n",
        "dumpreg 00 00 00 00 0A 03 FF 00 60 00\n",
        "recalibrate: irq 6, sense 20 00\n",
        "seek: irq 6, sense 20 0A, status 28\n",
        "read: irq 6, result 40 00 00 00 00 01 02\n",
        "drive b: status 79\n",
        "invalid: 80, sense 80\n",
    ]

    @Test("the guest resets the controller, reads its version and registers, recalibrates and seeks on IRQ 6, and finds no diskette, every port a device's (--strict-io)")
    func probe() throws {
        for extra in [[], ["--strict-io"]] {
            let r = try PluginListingTests.run(["run", Self.guest] + extra, bound: 120)
            #expect(r.stdout == Self.lines.joined())
            #expect(r.status == Self.done, "stderr: \(r.stderr)")
        }
    }

    @Test("DUMPREG's result stopped after its fourth byte survives a snapshot: restored in a new process, the guest reads the other six and goes on as an uninterrupted run does")
    func snapshotMidResult() throws {
        let dir = try VMMProcess.scratch("floppy", "snapshot")
        let head = Self.lines.prefix(3).joined()
        let (snap, saved) = try ATAGuestTests.snapshotWaiting(Self.guest, disk: nil, dir: dir, printed: head + "dumpreg, waiting for a key\n")
        // The result phase (3) at byte 4 of 10, SPECIFY's timers kept.
        #expect(saved.contains("\nfloppy 0x40 0xc0 0xc 0x0 0x0 0x0 0xd0 0x0 0x3 0x4 0xa 0x0 0xa 0x1 "), "\(saved)")
        let restored = try PluginListingTests.run(["restore", snap, "--serial", "stdio", "--max-seconds", "60"], bound: 120)
        #expect(restored.stdout == Self.lines.dropFirst(3).joined())
        #expect(restored.stderr == "")
        #expect(restored.status == Self.done)
    }
}
