import Testing
@testable import VMMKit

/// Out-pointers and arrays of plain values a plugin hands a host service may have any
/// alignment (a packed struct's field, in C): the host copies the bytes instead of
/// storing or loading through a typed pointer the address does not fit, which Swift
/// leaves undefined. Fixture: misaligned_out_plugin.c (every slot one byte past a
/// 16-byte boundary, with guard bytes around it).
@Suite("Plugin out-pointers at any alignment", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct PluginUnalignedOutTests {
    /// RDMSR 0x4b564d90 and 0x4b564d91 (routed by the plugin with an odd array) into
    /// 0x20000 and 0x20008; RBX = 0x0123456789abcdef; OUT to 0x550 (the plugin's port);
    /// OUT to 0xf4 (the test's exit).
    static let code: [UInt8] = [
        0xb9, 0x90, 0x4d, 0x56, 0x4b, 0x0f, 0x32, 0x89, 0x04, 0x25, 0x00, 0x00, 0x02, 0x00, 0x89, 0x14, 0x25, 0x04, 0x00,
        0x02, 0x00, 0xb9, 0x91, 0x4d, 0x56, 0x4b, 0x0f, 0x32, 0x89, 0x04, 0x25, 0x08, 0x00, 0x02, 0x00, 0x89, 0x14, 0x25,
        0x0c, 0x00, 0x02, 0x00, 0x48, 0xbb, 0xef, 0xcd, 0xab, 0x89, 0x67, 0x45, 0x23, 0x01, 0x66, 0xba, 0x50, 0x05, 0xee,
        0xe6, 0xf4,
    ]

    @Test("get_reg, pending_events, start_thread, async_pf raise, route_msrs, add_irqfd and every error_out, at odd addresses")
    func everyService() throws {
        #expect(PluginFixtures.built)
        let guest = try TestGuest("hlt", irqchip: true)
        let host = PluginHost(vm: guest.vm, dispatcher: guest.dispatcher)
        defer { host.close() }
        try guest.vm.memory.writeBytes(GuestLayout.codeStart, Self.code)
        try guest.dispatcher.registerPIO(port: 0xf4, owner: "test exit") { _, _ in .stop(.guestExit(code: 0)) }
        host.threadStarter = { start in start() }
        // init checks the load-thread services' odd error_out, fd_out and MSR array itself:
        // a failed check fails it, naming the service.
        try host.load(PluginFixtures.fixture("MisalignedOut"))
        #expect(try guest.run() == .guestExit(code: 0))
        let regs = try guest.vcpu.registers()
        #expect(regs.rsi == 0x0123_4567_89ab_cdef, "get_reg's value")
        #expect(regs.rdi == 0, "pending_events: nothing queued")
        #expect(regs.r8 == 0x5a, "the thread start_thread stored joins and returns its argument")
        #expect(regs.r9 == 1, "async_pf raise: VMM_FAIL and the host's message at message_out")
        #expect(regs.rdx == 1, "no byte beside a slot written")
        // Both MSRs of the odd array were routed to the plugin's handler.
        #expect(try guest.vm.memory.read(0x20000, as: UInt64.self) == 0x4b56_4d90 << 16 | 0x600d)
        #expect(try guest.vm.memory.read(0x20008, as: UInt64.self) == 0x4b56_4d91 << 16 | 0x600d)
    }
}
