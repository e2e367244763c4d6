import Testing

/// QEMU's `pc` has the ISA DMA controllers (hw/dma/i8257.c); a guest written for QEMU
/// (Examples/GuestImages/qemu/dma.S) programs and reads them as under QEMU.
@Suite("the ISA DMA controllers on real KVM", .serialized, .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct ISADMAGuestTests {
    @Test("the guest finds every channel masked after reset, programs channel 2 as a floppy read and channel 5's address, and reads them back (low byte first) with the pages, the mask, a software request and a master clear, every port a device's (--strict-io)")
    func programAndReadBack() throws {
        let expected = "reset: status 00 mask FF\n" + "channel 2: address 0010 count FF01 page 02 mask FB\n"
            + "channel 5: address 3412 page 07\n" + "request: status 40 40 then 00\n" + "master clear: mask FF\n"
        for extra in [[], ["--strict-io"]] {
            let r = try PluginListingTests.run(["run", VMMProcess.guest("dma.elf")] + extra, bound: 120)
            #expect(r.stdout == expected)
            #expect(r.status == (0x26 << 1) | 1, "stderr: \(r.stderr)")
        }
    }
}
