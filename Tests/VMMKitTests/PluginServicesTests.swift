import Glibc
import Testing
@testable import VMMKit

/// Host services a plugin calls from its handlers: exception injection with a
/// payload, registers only on the vCPU's own thread, and async-PF events raised by
/// one plugin and handled by another (the path issue 6's plugins use).
@Suite("Plugin host services", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct PluginServicesTests {
    static let handlerOffset: UInt64 = 0x80

    func prepare(_ guest: TestGuest, vector: UInt64 = 14) throws {
        // IDT at GuestLayout.idt with a gate to the payload's handler; IDTR at 0x20100.
        let h = GuestLayout.codeStart + Self.handlerOffset
        let low = (h & 0xffff) | (0x08 << 16) | (0x8e << 40) | (((h >> 16) & 0xffff) << 48)
        try guest.vm.memory.write(GuestLayout.idt + vector * 16, low)
        try guest.vm.memory.write(GuestLayout.idt + vector * 16 + 8, h >> 32)
        try guest.vm.memory.write(0x20100, UInt16(0xfff))
        try guest.vm.memory.write(0x20102, GuestLayout.idt)
    }

    @Test("an async-PF event raised by one plugin reaches another's handler; registers and #PF injection work")
    func withReceiver() throws {
        let (guest, host) = try PluginFixtures.guest("plugin_services")
        defer { host.close() }
        try prepare(guest)
        try host.load(PluginFixtures.fixture("AsyncReceiver"))
        try host.load(PluginFixtures.fixture("Services"))
        #expect(try guest.run() == .halted)
        let m = guest.vm.memory
        #expect(try m.read(0x20010, as: UInt64.self) == 0) // VMM_HANDLED by the receiver
        #expect(try m.read(0x20018, as: UInt64.self) == 0x5001) // gpa + PAGE_MISSING, set by the receiver
        #expect(try m.read(0x20020, as: UInt64.self) == UInt64(EBUSY)) // get_reg of another vCPU
        #expect(try m.read(0x20000, as: UInt64.self) == 0xdead000) // CR2 from the payload
        #expect(try m.read(0x20008, as: UInt64.self) == 2) // the error code
    }

    @Test("with no handler for async-PF events the raiser gets VMM_NOT_MINE")
    func withoutReceiver() throws {
        let (guest, host) = try PluginFixtures.guest("plugin_services")
        defer { host.close() }
        try prepare(guest)
        try host.load(PluginFixtures.fixture("Services"))
        #expect(try guest.run() == .halted)
        #expect(try guest.vm.memory.read(0x20010, as: UInt64.self) == 1)
    }

    @Test("set_irq_line refuses a line the irqchip lacks and a level other than 0 or 1; irqfd a GSI it lacks")
    func irqLineChecks() throws {
        let guest = try TestGuest("hlt", irqchip: true)
        let host = PluginHost(vm: guest.vm, dispatcher: guest.dispatcher)
        defer { host.close() }
        // mov dx, 0x540; mov eax, 5; out dx, eax; out 0xf4, al (with an irqchip HLT would not exit)
        try guest.vm.memory.writeBytes(GuestLayout.codeStart, [0x66, 0xba, 0x40, 0x05, 0xb8, 5, 0, 0, 0, 0xef, 0xe6, 0xf4])
        try guest.dispatcher.registerPIO(port: 0xf4, owner: "test exit") { _, _ in .stop(.guestExit(code: 0)) }
        try host.load(PluginFixtures.fixture("Services"))
        #expect(try guest.run() == .guestExit(code: 0))
        // EINVAL (22) for line 99999 and for level 7; line 23 exists.
        #expect(try guest.vcpu.registers().rcx == 0x00_16_16)
        #expect(throws: VMMError.invalidArgument("IRQ line 24 does not exist: the in-kernel irqchip has GSIs 0 to 23")) {
            try guest.vm.setIRQLine(24, level: true)
        }
        #expect(throws: VMMError.invalidArgument("irqfd on GSI 4294967295: the in-kernel irqchip has GSIs 0 to 23")) {
            _ = try guest.vm.addIRQFD(gsi: .max)
        }
    }

    @Test("async_pf raise refuses a vCPU that does not exist, an unknown kind and a misaligned event, with a message")
    func raiseChecks() throws {
        let guest = try TestGuest("hlt")
        let host = PluginHost(vm: guest.vm, dispatcher: guest.dispatcher)
        defer { host.close() }
        // mov dx, 0x540; mov eax, 6; out dx, eax; hlt
        try guest.vm.memory.writeBytes(GuestLayout.codeStart, [0x66, 0xba, 0x40, 0x05, 0xb8, 6, 0, 0, 0, 0xef, 0xf4])
        try host.load(PluginFixtures.fixture("AsyncReceiver")) // a handler the events would have reached
        try host.load(PluginFixtures.fixture("Services"))
        #expect(try guest.run() == .halted)
        let regs = try guest.vcpu.registers()
        #expect(regs.rcx == 0x02_0202, "VMM_FAIL three times")
        #expect(regs.rdx == 1, "the three messages")
    }

    @Test("inject_interrupt (no irqchip) delivers the vector to the guest's handler when it resumes")
    func interrupt() throws {
        let (guest, host) = try PluginFixtures.guest("plugin_interrupt")
        defer { host.close() }
        try prepare(guest, vector: 0x40)
        try host.load(PluginFixtures.fixture("Services"))
        #expect(try guest.run() == .halted)
        #expect(try guest.vm.memory.read(0x20000, as: UInt64.self) == 0x40) // the handler ran
        #expect(try guest.vm.memory.read(0x20008, as: UInt64.self) == 0) // injected at once
    }

    @Test("get_reg in a PIO or HLT handler on the hot path reads this exit's registers, never an earlier exit's cached ones")
    func registersAreFreshEachExit() throws {
        let guest = try TestGuest("hlt")
        let host = PluginHost(vm: guest.vm, dispatcher: guest.dispatcher)
        defer { host.close() }
        // mov eax, 1; mov dx, 0x560; out dx, al; mov eax, 2; hlt; mov eax, 3; hlt;
        // mov eax, 4; out dx, al; xor eax, eax; hlt (declined: the VM halts)
        try guest.vm.memory.writeBytes(GuestLayout.codeStart, [
            0xb8, 1, 0, 0, 0, 0x66, 0xba, 0x60, 0x05, 0xee, 0xb8, 2, 0, 0, 0, 0xf4, 0xb8, 3, 0, 0, 0, 0xf4,
            0xb8, 4, 0, 0, 0, 0xee, 0x31, 0xc0, 0xf4,
        ])
        try host.load(PluginFixtures.fixture("RegCache"))
        #expect(try guest.run() == .halted)
        let seen = try (0..<6).map { try guest.vm.memory.read(0x20200 + UInt64($0) * 8, as: UInt64.self) }
        #expect(seen == [1, 2, 3, 4, 0, 0], "RAX as each exit's handler read it (the sixth slot never written)")
    }

    @Test("MSR and HLT classes: RDMSR value into the guest, WRMSR value out, HLT seen then declined")
    func msrAndHlt() throws {
        let (guest, host) = try PluginFixtures.guest("msr")
        defer { host.close() }
        try guest.vm.enableUserSpaceMSRExits()
        try host.load(PluginFixtures.fixture("Services"))
        #expect(try guest.run() == .halted)
        let m = guest.vm.memory
        #expect(try m.read(TestGuest.scratch, as: UInt64.self) == 0x0102_0304_0506_0708)
        #expect(try m.read(0x20100, as: UInt64.self) == 0x5566_7788_1122_3344)
        #expect(try m.read(0x20108, as: UInt64.self) == 0x4c54)
    }
}
