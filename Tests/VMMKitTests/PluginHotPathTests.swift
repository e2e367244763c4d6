import Testing
@testable import VMMKit

/// The run loop calls a plugin's PIO, MMIO and HLT handlers directly (PluginHotCall)
/// instead of through their closures; with an observer set it takes the closures. Both
/// must route the same: priority order, VMM_NOT_MINE falling through to the next
/// handler (a plugin's or a closure), read data back to the guest, VMM_FAIL naming the
/// plugin's handler.
@Suite("Plugin handlers on the run loop's hot path", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct PluginHotPathTests {
    /// OUT 1 (first declines, second keeps 1), OUT 2 (first counts), HLT (the plugin
    /// counts and declines, the closure below handles), an MMIO store (first keeps it)
    /// and load (first declines, second reads it + 1) to 0x20004, IN (second: 0x51) to
    /// 0x20000, OUT 3 (first fails).
    static let code: [UInt8] = [
        0x66, 0xba, 0xe0, 0x05, // mov dx, 0x5e0
        0xb0, 0x01, 0xee, // mov al, 1; out dx, al
        0xb0, 0x02, 0xee, // mov al, 2; out dx, al
        0xf4, // hlt
        0xbb, 0x00, 0x00, 0x00, 0xd0, // mov ebx, 0xd0000000
        0xb8, 0x78, 0x56, 0x34, 0x12, // mov eax, 0x12345678
        0x89, 0x03, // mov [rbx], eax
        0x8b, 0x43, 0x08, // mov eax, [rbx + 8]
        0x89, 0x04, 0x25, 0x04, 0x00, 0x02, 0x00, // mov [0x20004], eax
        0xec, // in al, dx
        0x88, 0x04, 0x25, 0x00, 0x00, 0x02, 0x00, // mov [0x20000], al
        0xb0, 0x03, 0xee, // mov al, 3; out dx, al
        0xf4, // hlt (not reached)
    ]

    final class Observer: ExitObserver {
        let exits = Recorder<String>()
        func willDispatch(_ exit: VMExit, on vcpu: VCPU) {}
        func didDispatch(_ exit: VMExit, verdict: ExitVerdict, on vcpu: VCPU) { exits.append("\(verdict)") }
    }

    @Test("priorities, fall-through to plugins and closures, read-back and failure: the same with and without an observer",
          arguments: [false, true])
    func chain(observed: Bool) throws {
        let (guest, host) = try PluginFixtures.guest("hlt")
        defer { host.close() }
        try guest.vm.memory.writeBytes(GuestLayout.codeStart, Self.code)
        try host.load(PluginFixtures.fixture("Chain"))
        let halts = Recorder<String>()
        try guest.dispatcher.register(.hlt, priority: -1, owner: "closure") { exit, _ in
            halts.append("\(exit)"); return .handled
        }
        let observer = Observer()
        if observed { try guest.dispatcher.setObserver(observer) }
        let reason = try guest.run()
        let owner = "org.vmmkit.test.chain 'first' (\(PluginFixtures.fixture("Chain")))"
        #expect(reason == .handlerFailed("\(owner): chain: refused 3"))
        #expect(halts.all == ["hlt"])
        #expect(try guest.vm.memory.readBytes(TestGuest.scratch, count: 1) == [0x51])
        #expect(try guest.vm.memory.readBytes(TestGuest.scratch + 4, count: 4) == [0x79, 0x56, 0x34, 0x12])
        if observed { #expect(observer.exits.all.count == 7) }
    }
}
