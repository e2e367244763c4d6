import Testing

/// QEMU's `pc` has LPT1 at 0x378 (IRQ 7, the null backend under `-nographic`); a guest
/// written for QEMU (Examples/GuestImages/qemu/lpt.S) probes it and prints through it
/// with the strobe handshake, as under QEMU.
@Suite("the parallel port LPT1 on real KVM", .serialized, .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct ParallelGuestTests {
    static let guest = VMMProcess.guest("lpt.elf")

    @Test("the guest finds LPT1 as QEMU resets it, reads its latch back, prints three bytes with an IRQ 7 for each strobe's fall and sees INIT reset the status, every port a device's (--strict-io)")
    func probeAndPrint() throws {
        let expected = "registers: data FF status D9 control CC\n" + "latch 55\n"
            + "printed 03 bytes, interrupts 03 status D9\n" + "init: status D8\n"
        for extra in [[], ["--strict-io"]] {
            let r = try PluginListingTests.run(["run", Self.guest] + extra, bound: 120)
            #expect(r.stdout == expected)
            #expect(r.status == (0x25 << 1) | 1, "stderr: \(r.stderr)")
        }
    }
}
