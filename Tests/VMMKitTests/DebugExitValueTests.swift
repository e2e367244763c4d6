import Testing
@testable import VMMKit

/// The C debug-exit plugin (Plugins/DebugExit, built with plain cc) ends the VM with
/// exactly the code the guest wrote, over the whole 32-bit range, on a port or MMIO.
@Suite("Debug-exit codes on real KVM", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct DebugExitValueTests {
    static let codes: [UInt32] = [0, 1, 3, 42, 0xff, 0x100, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff]

    func run(code: UInt32, config: String, mmio: UInt64?) throws -> (reasons: [StopReason], vm: StopReason?) {
        precondition(PluginFixtures.built, "scripts/build-plugins failed")
        let guest = try TestGuest("debug_exit_value", ring: 3)
        var regs = try guest.vcpu.registers()
        regs.rdi = UInt64(code)
        regs.rsi = mmio ?? 0
        try guest.vcpu.setRegisters(regs)
        let plugins = PluginHost(vm: guest.vm, dispatcher: guest.dispatcher)
        defer { plugins.close() }
        try plugins.load("DebugExit", config: config)
        return (try guest.vm.run(guest.dispatcher), guest.vm.stopReason)
    }

    @Test("port 0xf4: the code written is the VM's result", arguments: codes)
    func port(code: UInt32) throws {
        let r = try run(code: code, config: "", mmio: nil)
        #expect(r.reasons == [.guestExit(code: Int32(bitPattern: code))])
        #expect(r.vm == .guestExit(code: Int32(bitPattern: code)))
    }

    @Test("MMIO 0xd0000800: the code written is the VM's result", arguments: codes)
    func mmio(code: UInt32) throws {
        let r = try run(code: code, config: "mmio=0xd0000800", mmio: 0xd000_0800)
        #expect(r.reasons == [.guestExit(code: Int32(bitPattern: code))])
        #expect(r.vm == .guestExit(code: Int32(bitPattern: code)))
    }
}
