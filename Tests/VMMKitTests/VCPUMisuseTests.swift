import Glibc
import Synchronization
import Testing
@testable import VMMKit

/// The public vCPU API used the wrong way round on real KVM: after the VM's close, from
/// a handler on the vCPU's own thread, on an embedder's thread (`runLoop`). Each use
/// gets a thrown error or a harmless, documented outcome: never a crash or a hang.
@Suite("vCPU API misuse on real KVM", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct VCPUMisuseTests {
    /// `mov al, 7; out 0xf4, al; jmp $`.
    static let outThenSpin: [UInt8] = [0xB0, 0x07, 0xE6, 0xF4, 0xEB, 0xFE]

    static func guest(_ code: [UInt8] = outThenSpin) throws -> TestGuest {
        let guest = try TestGuest("spin")
        try guest.vm.memory.writeBytes(GuestLayout.codeStart, code)
        return guest
    }

    /// A value a handler or another thread hands back to the test.
    final class Slot<T: Sendable>: @unchecked Sendable {
        private let lock = Lock<T?>(nil)
        func set(_ value: T) { lock.withLock { $0 = value } }
        var value: T? { lock.withLock { $0 } }
    }

    @Test("a vCPU kept after its VM's close throws .closed from run(), and runLoop, complete and requestInterruptWindow harm nothing")
    func useAfterClose() throws {
        let guest = try Self.guest()
        let vcpu = guest.vcpu
        guest.vm.close()
        #expect(throws: VMMError.closed("vCPU 0")) { _ = try vcpu.run() }
        #expect(throws: VMMError.closed("vCPU 0")) { _ = try vcpu.run() }
        #expect(vcpu.runLoop(guest.dispatcher) == .error(.closed("vCPU 0")))
        #expect(throws: VMMError.closed("vCPU 0")) { try vcpu.start(guest.dispatcher) }
        vcpu.requestInterruptWindow = true
        vcpu.complete(.mmio(MMIOAccess(address: TestGuest.mmioBase, length: 4, isWrite: false, data: 1)))
        #expect(throws: VMMError.closed("vCPU 0")) { _ = try vcpu.registers() }
        #expect(throws: VMMError.closed("virtual machine")) { _ = try guest.vm.run(guest.dispatcher) }
    }

    @Test("a closed vCPU's fd number stays reserved (on /dev/null) until the vCPU is freed")
    func closedFDNumberReserved() throws {
        let guest = try Self.guest()
        let vcpu = guest.vcpu
        let number = vcpu.fd
        guest.vm.close()
        #expect(vcpu.fd == -1)
        var status = stat(), null = stat()
        #expect(fstat(number, &status) == 0, "the number was freed for another file to take")
        #expect(stat("/dev/null", &null) == 0)
        #expect(status.st_rdev == null.st_rdev)
    }

    @Test("stop() from another thread ends a runLoop on the embedder's own thread, and close() while it runs stops it first")
    func runLoopStops() throws {
        for viaClose in [false, true] {
            let guest = try Self.guest([0xEB, 0xFE])
            let vcpu = guest.vcpu
            let returned = Slot<StopReason>()
            let thread = spawn { [dispatcher = guest.dispatcher] in returned.set(vcpu.runLoop(dispatcher)) }
            #expect(eventually { vcpu.isRunning })
            if viaClose {
                guest.vm.close()
            } else {
                #expect(vcpu.stop() == .requested)
            }
            #expect(!vcpu.isRunning, "the loop was still running when stop/close returned")
            pthread_join(thread, nil)
            #expect(returned.value == .requested)
        }
    }

    @Test("runLoop on a vCPU whose loop already runs (start) is refused; the running loop is untouched")
    func runLoopWhileStarted() throws {
        let guest = try Self.guest([0xEB, 0xFE])
        try guest.vcpu.start(guest.dispatcher)
        #expect(guest.vcpu.runLoop(guest.dispatcher) == .error(VCPUControl.loopRunning))
        #expect(guest.vcpu.isRunning)
        #expect(guest.vcpu.stop() == .requested)
    }

    @Test("stop() in a handler on the vCPU's own thread returns at once and the loop ends when the handler returns")
    func stopInHandler() throws {
        let guest = try Self.guest()
        let inHandler = Slot<StopReason>()
        try guest.dispatcher.registerPIO(port: 0xf4, owner: "test") { _, vcpu in
            inHandler.set(vcpu.stop())
            return .handled
        }
        #expect(try guest.run() == .requested)
        #expect(inHandler.value == .requested)
    }

    @Test("pause() in a handler returns at once; the vCPU parks after the handler until another thread resumes it")
    func pauseInHandler() throws {
        let guest = try Self.guest()
        let paused = Slot<Bool>()
        try guest.dispatcher.registerPIO(port: 0xf4, owner: "test") { _, vcpu in
            vcpu.pause()
            paused.set(true)
            return .handled
        }
        try guest.vcpu.start(guest.dispatcher)
        #expect(eventually { guest.vcpu.isPaused })
        #expect(paused.value == true)
        guest.vcpu.resume()
        #expect(eventually { !guest.vcpu.isPaused })
        #expect(guest.vcpu.stop() == .requested)
    }

    @Test("vm.close() in a handler releases the VM without waiting for its own thread, whose loop ends with .requested")
    func closeInHandler() throws {
        let guest = try Self.guest()
        let vm = guest.vm
        let closed = Slot<Int32>()
        try guest.dispatcher.registerPIO(port: 0xf4, owner: "test") { _, _ in
            vm.close()
            closed.set(vm.fd)
            return .handled
        }
        let vcpu = guest.vcpu
        try vcpu.start(guest.dispatcher)
        #expect(vcpu.join() == .requested)
        #expect(closed.value == -1)
        #expect(throws: VMMError.closed("vCPU 0")) { _ = try vcpu.registers() }
    }

    @Test("PIOAccess.element and setElement outside 0..<count read 0 and write nothing")
    func elementOutOfRange() throws {
        let guest = try Self.guest()
        let seen = Slot<[UInt32]>()
        try guest.dispatcher.registerPIO(port: 0xf4, owner: "test") { io, _ in
            io.setElement(3, 0xffff_ffff)
            io.setElement(-1, 0xffff_ffff)
            seen.set([io.element(0), io.element(1), io.element(3), io.element(-1), io.element(Int.max)])
            return .stop(.requested)
        }
        #expect(try guest.run() == .requested)
        #expect(seen.value == [7, 0, 0, 0, 0])
    }
}
