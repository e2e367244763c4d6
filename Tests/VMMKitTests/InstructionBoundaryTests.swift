import Testing
@testable import VMMKit

/// A pause or stop lands between two instructions, as QEMU's does, even when the exit
/// just handled is half of one: `outs` from MMIO is an MMIO read, then a PIO write that
/// the kernel returns from the very `KVM_RUN` that completes the read.
@Suite("A stop lands between instructions on real KVM", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct InstructionBoundaryTests {
    @Test("a stop asked for during the MMIO half of outs: the PIO half is still dispatched, and the state read after it is whole")
    func stopDuringOutsFromMMIO() throws {
        let guest = try TestGuest("hlt")
        // mov esi, 0xd0000000; mov dx, 0x40; outsd; hlt
        let code: [UInt8] = [0xbe, 0x00, 0x00, 0x00, 0xd0, 0x66, 0xba, 0x40, 0x00, 0x6f, 0xf4]
        try guest.vm.memory.writeBytes(GuestLayout.codeStart, code)
        let vm = guest.vm
        try guest.dispatcher.registerMMIO(address: TestGuest.mmioBase, length: 4, owner: "test") { a, _ in
            a.data = 0x1234_5678
            vm.requestStop(.requested) // as the API's stop or pause would, mid-instruction
            return .handled
        }
        let written = Recorder<UInt32>()
        try guest.dispatcher.registerPIO(port: 0x40, owner: "test") { io, _ in written.append(io.value); return .handled }
        #expect(try guest.run() == .requested)
        // Before, the vCPU stopped before the write: it was never dispatched, the state
        // was mid-instruction, and completing it for a snapshot failed ("rc 0").
        #expect(written.all == [0x1234_5678])
        try guest.vcpu.completePendingIO()
        #expect(try guest.vcpu.registers().rip == GuestLayout.codeStart + 10, "past outsd, at the hlt")
    }
}
