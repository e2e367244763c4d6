import CKVM
import Testing
@testable import VMMKit
@testable import VMMSnapshot

/// A vector waiting for the guest's interrupt window when the VM is saved (an async-PF
/// "ready" sent while IF = 0: the host could only set `request_interrupt_window`). The
/// request lives in the VMM's run page, not in any KVM state ioctl, so a snapshot must
/// carry it: a restore without it never gets the window exit, and a guest spinning for
/// its "ready" at ring 3 (no exits) waits forever. CI18 hung exactly so, twice in one
/// test (RELIABILITY.md, Determinism).
@Suite("Snapshot of the run page's inputs on real KVM (interrupt-window request, CR8)", .serialized,
       .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct SnapshotRunPageTests {
    @Test("a window requested while IF = 0 survives save and restore: the restored vCPU exits for it and takes the vector")
    func windowRequestSurvives() throws {
        let scratch = ScratchDir("window")
        let dir = scratch.sub("snap")
        let guest = try TestGuest("apf_window_snap")
        let requested = Recorder<Bool>()
        try guest.dispatcher.registerPIO(port: 0x10, owner: "test") { _, vcpu in
            // IF = 0: the vector cannot go in now, so ask for the window (as the plugin
            // host's inject_interrupt does on EAGAIN).
            requested.append(vcpu.readyForInterruptInjection)
            vcpu.requestInterruptWindow = true
            return .handled
        }
        try guest.dispatcher.registerPIO(port: 0x11, owner: "test") { _, _ in .stop(.requested) }
        #expect(try guest.run() == .requested)
        #expect(requested.all == [false], "IF = 0 at the request")
        #expect(guest.vcpu.requestInterruptWindow)
        try VMSnapshot.save(guest.vm, dispatcher: guest.dispatcher, to: dir)
        guest.vm.close()

        let restored = try VMSnapshot.restore(from: dir, on: guest.kvm, memory: .eager)
        defer { restored.close() }
        let vcpu = restored.vm.vcpus[0]
        #expect(vcpu.requestInterruptWindow, "the restored run page asks for the window again")
        let dispatcher = ExitDispatcher()
        let windows = Recorder<Bool>()
        try dispatcher.register(.irqWindowOpen, owner: "test") { _, vcpu in
            windows.append(true)
            do throws(VMMError) { try vcpu.interrupt(vector: 0xf3) } catch { return .fail("\(error)") }
            vcpu.requestInterruptWindow = false
            return .handled
        }
        // Port 0xf4 reports how often the guest's handler ran before its bounded wait ended.
        try dispatcher.registerPIO(port: 0xf4, owner: "test") { io, _ in .stop(.guestExit(code: Int32(truncatingIfNeeded: io.value))) }
        let stops = try restored.vm.run(dispatcher)
        #expect(stops == [.guestExit(code: 1)], "\(stops)")
        #expect(windows.all == [true])
    }

    @Test("CR8 set by a guest without an in-kernel LAPIC survives save and restore (KVM loads it from the run page at each entry)")
    func cr8Survives() throws {
        let scratch = ScratchDir("cr8")
        let dir = scratch.sub("snap")
        let guest = try TestGuest("snap_cr8")
        try guest.dispatcher.registerPIO(port: 0x11, owner: "test") { _, _ in .stop(.requested) }
        #expect(try guest.run() == .requested)
        #expect(try guest.vcpu.specialRegisters().cr8 == 5)
        try VMSnapshot.save(guest.vm, dispatcher: guest.dispatcher, to: dir)
        guest.vm.close()

        let restored = try VMSnapshot.restore(from: dir, on: guest.kvm, memory: .eager)
        defer { restored.close() }
        let dispatcher = ExitDispatcher()
        try dispatcher.registerPIO(port: 0xf4, owner: "test") { io, _ in .stop(.guestExit(code: Int32(truncatingIfNeeded: io.value))) }
        // The guest reads CR8 after the restore and reports it.
        #expect(try restored.vm.run(dispatcher) == [.guestExit(code: 5)])
    }

    @Test("the request is a record of its own, written only when set: other state files stay as before")
    func recordOnlyWhenSet() throws {
        var state = SnapshotDecodeTests.sampleState()
        let without = state.encoded()
        #expect(try !VCPUState.decode(without, id: 0, path: "t").interruptWindowRequested)
        state.interruptWindowRequested = true
        let with = state.encoded()
        #expect(with.count == without.count + 12 && with.starts(with: without))
        #expect(try VCPUState.decode(with, id: 0, path: "t").interruptWindowRequested)
        var bad = with
        bad[bad.count - 4] = 2
        #expect(throws: SnapshotError.invalid(path: "t", "interruptWindow record at byte \(without.count) holds 2 (only 1 is written)")) {
            try VCPUState.decode(bad, id: 0, path: "t")
        }
    }
}
