import Glibc
import Testing
@testable import VMMKit
@testable import VMMLoader

/// Misuse of guest memory, snapshots and the loader through the public API: each gets a
/// documented error or a harmless outcome, never a trap, a hang or wrong bytes.
@Suite("guest memory misuse on real KVM", .serialized, .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct MemoryMisuseTests {
    @Test("a closed VM's memory refuses with .closed and never reaches the VM that got its fd number")
    func closedVMMemory() throws {
        let kvm = try KVM.open()
        let vm1 = try kvm.createVM()
        vm1.close()
        let vm2 = try kvm.createVM()
        defer { vm2.close() }
        #expect(throws: VMMError.closed("virtual machine")) {
            try vm1.memory.addRegion(name: "stale", guestAddress: 0, size: 0x1000)
        }
        #expect(throws: VMMError.closed("virtual machine")) { try vm1.memory.removeRegion(named: "stale") }
        #expect(throws: VMMError.closed("virtual machine")) { _ = try vm1.memory.dirtyPages(in: "stale") }
        #expect(vm1.memory.regions.isEmpty)
        // vm2's slot 0 is still free: its own region goes in.
        let region = try vm2.memory.addRegion(name: "ram", guestAddress: 0, size: 0x1000)
        #expect(region.slot == 0)
        #expect(vm2.memory.regions.map(\.name) == ["ram"])
    }

    @Test("an unmapped-address error with a negative length describes itself", arguments: [-1, Int.min])
    func negativeLengthDescription(length: Int) throws {
        let vm = try KVM.open().createVM()
        defer { vm.close() }
        try vm.memory.addRegion(name: "ram", guestAddress: 0, size: 0x1000)
        #expect(throws: VMMError.unmappedGuestAddress(gpa: 0, length: length)) { _ = try vm.memory.hostPointer(0, length: length) }
        let text = VMMError.unmappedGuestAddress(gpa: 0x1000, length: length).description
        #expect(text == "guest-physical access at 0x1000 has a negative length (\(length))")
        #expect(throws: VMMError.unmappedGuestAddress(gpa: 0, length: -1)) { _ = try vm.memory.readBytes(0, count: -1) }
    }

    @Test("automatic vCPU ids take the lowest free id")
    func automaticVCPUIDs() throws {
        let vm = try KVM.open().createVM()
        defer { vm.close() }
        try vm.createVCPU(id: 1)
        #expect(try vm.createVCPU().id == 0)
        #expect(try vm.createVCPU().id == 2)
        #expect(vm.vcpus.map(\.id) == [1, 0, 2])
    }

    @Test("a ramSize the memory does not hold is refused naming both", arguments: [UInt64(1) << 40, UInt64.max, 4 << 20])
    func ramSizeBeyondMemory(ramSize: UInt64) throws {
        let vm = try KVM.open().createVM()
        defer { vm.close() }
        try vm.memory.addRegion(name: "ram", guestAddress: 0, size: 2 << 20)
        let loader = ImageLoader(memory: vm.memory, ramSize: ramSize)
        #expect {
            try loader.load([0xf4], ImageRequest(path: "flat.bin", loadAddress: 0x10000))
        } throws: { error in
            guard let error = error as? LoaderError else { return false }
            return error.kind == .request && error.message.contains("ramSize 0x\(String(ramSize, radix: 16))")
                && error.message.contains("no memory region covers 0x200000 (regions: 'ram' [0x0..<0x200000])")
        }
        // What the memory holds loads.
        #expect(throws: Never.self) { try ImageLoader(memory: vm.memory, ramSize: 2 << 20).load([0xf4], ImageRequest(path: "flat.bin", loadAddress: 0x10000)) }
    }

    @Test("a ramSize with no RAM past the first page is refused", arguments: [UInt64(0), 1, 0x1000])
    func ramSizeTooSmall(ramSize: UInt64) throws {
        let vm = try KVM.open().createVM()
        defer { vm.close() }
        try vm.memory.addRegion(name: "ram", guestAddress: 0, size: 2 << 20)
        #expect {
            try ImageLoader(memory: vm.memory, ramSize: ramSize).load([0xf4], ImageRequest(path: "flat.bin", loadAddress: 0x10000))
        } throws: { ($0 as? LoaderError)?.message.contains("leaves no guest RAM past the first page") == true }
    }

    @Test("a highRAMSize the memory does not hold from 4 GiB, past 2^64 or under a ramSize above 4 GiB is refused", arguments: [
        (UInt64(4) << 20, UInt64(0), "highRAMSize 0x400000 (RAM from 4 GiB) is more than the guest memory holds: no memory region covers 0x100000000 (regions: 'ram' [0x0..<0x200000])"),
        (4 << 20, 2 << 20, "highRAMSize 0x400000 (RAM from 4 GiB) is more than the guest memory holds: no memory region covers 0x100200000 (regions: 'ram' [0x0..<0x200000], 'high' [0x100000000..<0x100200000])"),
        (UInt64.max, 2 << 20, "highRAMSize 0xffffffffffffffff: RAM from 4 GiB runs past the end of the 64-bit address space"),
        ((UInt64.max - (1 << 32)) + 1, 2 << 20, "highRAMSize 0xffffffff00000000: RAM from 4 GiB runs past the end of the 64-bit address space"),
    ])
    func highRAMSizeBeyondMemory(highRAMSize: UInt64, highRegion: UInt64, message: String) throws {
        let vm = try KVM.open().createVM()
        defer { vm.close() }
        try vm.memory.addRegion(name: "ram", guestAddress: 0, size: 2 << 20)
        if highRegion > 0 { try vm.memory.addRegion(name: "high", guestAddress: 1 << 32, size: highRegion) }
        #expect(throws: LoaderError(.request, message)) {
            try ImageLoader(memory: vm.memory, ramSize: 2 << 20, highRAMSize: highRAMSize).load([0xf4], ImageRequest(path: "flat.bin", loadAddress: 0x10000))
        }
        // The memory's own high RAM loads.
        if highRegion > 0 {
            #expect(throws: Never.self) {
                try ImageLoader(memory: vm.memory, ramSize: 2 << 20, highRAMSize: highRegion).load([0xf4], ImageRequest(path: "flat.bin", loadAddress: 0x10000))
            }
        }
    }

    @Test("a ramSize above 4 GiB with a highRAMSize is refused as an overlap")
    func highRAMOverlap() throws {
        let vm = try KVM.open().createVM()
        defer { vm.close() }
        try vm.memory.addRegion(name: "ram", guestAddress: 0, size: 2 << 20)
        #expect(throws: LoaderError(.request, "ramSize 0x100001000 and highRAMSize 0x200000 overlap: RAM below the MMIO hole ends above 4 GiB, where the RAM above it starts")) {
            try ImageLoader(memory: vm.memory, ramSize: (1 << 32) + 0x1000, highRAMSize: 2 << 20).load([0xf4], ImageRequest(path: "flat.bin", loadAddress: 0x10000))
        }
    }
}
