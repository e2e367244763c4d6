import Glibc
import CKVM
import Testing
@testable import VMMKit

@Suite("Guest memory on real KVM", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct GuestMemoryTests {
    func makeVM() throws -> VirtualMachine { try KVM.open().createVM() }

    @Test("refusals name both regions and leave nothing mapped", arguments: [
        (0x10_0000, 0x10_0000, "memory region 'b' [0x180000..<0x280000] overlaps region 'a' [0x100000..<0x200000]"),
        (0x0, 0x0, "memory region 'b' at 0x0 has size zero"),
        (0x1234, 0x1000, "memory region 'b' [0x1234..<0x2234] is not aligned to the 4 KiB page size (address and size must both be multiples of 0x1000)"),
        (0x0, 0x1800, "memory region 'b' [0x0..<0x1800] is not aligned to the 4 KiB page size (address and size must both be multiples of 0x1000)"),
    ])
    func refusals(start: UInt64, size: UInt64, message: String) throws {
        let vm = try makeVM()
        defer { vm.close() }
        try vm.memory.addRegion(name: "a", guestAddress: 0x10_0000, size: 0x10_0000)
        let fds = openFDs(), maps = mappingCount()
        let gpa = start == 0x10_0000 ? 0x18_0000 : start
        #expect {
            try vm.memory.addRegion(name: "b", guestAddress: gpa, size: size, backing: .memfd)
        } throws: { ($0 as? VMMError)?.description == message }
        #expect(fdsOpened(since: fds) == [])
        #expect(mappingsUnreliable || mappingCount() <= maps) // a leak is growth; fewer is an earlier test's memory given back
        #expect(vm.memory.regions.map(\.name) == ["a"])
    }

    @Test("a region past the guest-physical address width is refused")
    func outOfRange() throws {
        let vm = try makeVM()
        defer { vm.close() }
        let bits = vm.kvm.physicalAddressBits
        let limit: UInt64 = 1 << UInt64(bits)
        #expect {
            try vm.memory.addRegion(name: "far", guestAddress: limit - 0x1000, size: 0x2000)
        } throws: {
            ($0 as? VMMError)?.description
                == "memory region 'far' [\(hex(limit - 0x1000))..<\(hex(limit + 0x1000))] lies outside the \(bits)-bit guest-physical address space (limit \(hex(limit)))"
        }
    }

    @Test("bounds-checked access: a range that leaves its region is refused")
    func boundsChecks() throws {
        let vm = try makeVM()
        defer { vm.close() }
        try vm.memory.addRegion(name: "a", guestAddress: 0x1000, size: 0x1000)
        try vm.memory.write(0x1ff8, UInt64(0x0102_0304_0506_0708))
        #expect(try vm.memory.read(0x1ff8, as: UInt64.self) == 0x0102_0304_0506_0708)
        #expect(vm.memory.region(containing: 0x1fff)?.name == "a")
        #expect(vm.memory.region(containing: 0x2000) == nil)
        #expect {
            _ = try vm.memory.read(0x1ffc, as: UInt64.self)
        } throws: { ($0 as? VMMError)?.description == "guest-physical range 0x1ffc..<0x2004 is not covered by one memory region" }
    }

    @Test("memfd-backed RAM: the guest's writes are visible through the fd (snapshot)")
    func memfdSnapshot() throws {
        let guest = try TestGuest("pio_in", backing: .memfd)
        try guest.dispatcher.registerPIO(port: 0x11, owner: "t") { io, _ in io.value = 0x5a5a_5a5a; return .handled }
        try guest.dispatcher.registerPIO(port: 0x12, owner: "t") { _, _ in .handled }
        #expect(try guest.run() == .halted)
        let region = try #require(guest.vm.memory.regions.first)
        #expect(region.fd >= 0)
        var word: UInt32 = 0
        #expect(pread(region.fd, &word, 4, off_t(TestGuest.scratch + 0x10)) == 4)
        #expect(word == 0x5a5a_5a5a)
    }

    @Test("guest_memfd (MMAP|INIT_SHARED): the guest runs from it and the host sees its writes")
    func guestMemfd() throws {
        let kvm = try KVM.open()
        guard kvm.hasExtension(KVM_CAP_GUEST_MEMFD), kvm.hasExtension(KVM_CAP_USER_MEMORY2) else {
            // Some kernels of this kind lack it (6.18.44-fc: KVM_CHECK_EXTENSION 234 is 0 on
            // the system and the VM fd). A user then gets the refusal naming the capability.
            print("GuestMemoryTests: the kernel lacks KVM_CAP_GUEST_MEMFD; checking the refusal instead")
            do {
                _ = try TestGuest("pio_in", backing: .guestMemfd)
                Issue.record("a guest_memfd region was accepted by a kernel without KVM_CAP_GUEST_MEMFD")
            } catch {
                #expect("\(error)" == "the kernel lacks KVM_CAP_GUEST_MEMFD, needed for guest_memfd region 'ram'")
            }
            return
        }
        let guest = try TestGuest("pio_in", backing: .guestMemfd)
        try guest.dispatcher.registerPIO(port: 0x11, owner: "t") { io, _ in io.value = 0x77; return .handled }
        try guest.dispatcher.registerPIO(port: 0x12, owner: "t") { _, _ in .handled }
        #expect(try guest.run() == .halted)
        #expect(try guest.vm.memory.read(TestGuest.scratch, as: UInt8.self) == 0x77)
    }

    @Test("a read-only slot: guest reads work, guest writes exit as MMIO at that address")
    func readOnlySlot() throws {
        let guest = try TestGuest("mmio")
        // Replace the MMIO window by a read-only RAM page holding known data.
        try guest.vm.memory.addRegion(name: "rom", guestAddress: TestGuest.mmioBase, size: 0x1000, readOnly: true)
        let rom = try guest.vm.memory.hostPointer(TestGuest.mmioBase, length: 0x1000)
        (rom + 0x18).storeBytes(of: UInt64(0x1122_3344_5566_7788), as: UInt64.self)
        let writes = Recorder<UInt64>()
        try guest.dispatcher.registerMMIO(address: TestGuest.mmioBase, length: 0x1000, owner: "rom") { a, _ in
            #expect(a.isWrite)
            writes.append(a.address - TestGuest.mmioBase)
            return .handled
        }
        #expect(try guest.run() == .halted)
        #expect(writes.all == [0, 2, 4, 8, 0x20])
        #expect(try guest.vm.memory.read(TestGuest.scratch + 0x18, as: UInt64.self) == 0x1122_3344_5566_7788)
        #expect(rom.load(as: UInt64.self) == 0)
    }

    @Test("dirty logging reports exactly the pages the guest wrote")
    func dirtyLog() throws {
        let kvm = try KVM.open()
        let vm = try kvm.createVM()
        defer { vm.close() }
        try vm.memory.addRegion(name: "low", guestAddress: 0, size: 0x20000)
        try vm.memory.addRegion(name: "data", guestAddress: 0x20000, size: 0x10000, logDirty: true)
        try vm.memory.writeBytes(GuestLayout.codeStart, Payload.bytes("pio_in"))
        let vcpu = try vm.createVCPU()
        try vcpu.setupLongMode(entry: GuestLayout.codeStart, stack: 0x1f000)
        #expect(try vm.memory.dirtyPages(in: "data") == [])
        let d = ExitDispatcher()
        try d.registerPIO(port: 0x11, owner: "t") { io, _ in io.value = 1; return .handled }
        try d.registerPIO(port: 0x12, owner: "t") { _, _ in .handled }
        #expect(try vm.run(d) == [.halted])
        #expect(try vm.memory.dirtyPages(in: "data") == [0x20000])
        #expect(try vm.memory.dirtyPages(in: "data") == [])
        #expect {
            _ = try vm.memory.dirtyPages(in: "low")
        } throws: { ($0 as? VMMError)?.description == "memory region 'low' [0x0..<0x20000] was added without logDirty" }
    }

    @Test("removing a region unmaps it and frees its slot")
    func removal() throws {
        let vm = try makeVM()
        defer { vm.close() }
        let maps = mappingCount()
        try vm.memory.addRegion(name: "a", guestAddress: 0, size: 0x4000, backing: .memfd)
        try vm.memory.removeRegion(named: "a")
        #expect(mappingsUnreliable || mappingCount() <= maps) // a leak is growth; fewer is an earlier test's memory given back
        let again = try vm.memory.addRegion(name: "a", guestAddress: 0, size: 0x4000)
        #expect(again.slot == 0)
        #expect { try vm.memory.removeRegion(named: "zz") } throws: { ($0 as? VMMError)?.description == "no memory region named 'zz'" }
    }
}
