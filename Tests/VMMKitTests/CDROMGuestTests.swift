import Testing

/// QEMU's `pc` has an empty ATAPI CD-ROM drive as the secondary channel's master; a guest
/// written for QEMU (Examples/GuestImages/qemu/cdrom.S) probes it as a BIOS and Linux's
/// libata do and finds what it finds under QEMU.
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
}
