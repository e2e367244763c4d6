import Foundation
import Glibc
import Testing
import VMMControl
import VMMKit

/// VMSupervisor: a VM stops as a whole, and with an in-kernel irqchip a machine whose
/// vCPUs all halted with interrupts off ends (issue 13, items 1 and 8).
@Suite("VMSupervisor on real KVM", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct VMSupervisorTests {
    @Test("halt rule: with an in-kernel irqchip, HLT with interrupts off ends the run as .halted")
    func haltRule() throws {
        let guest = try TestGuest("hlt", irqchip: true)
        let outcome = try VMSupervisor(vm: guest.vm, detectHalt: true, pollInterval: 0.001).run(guest.dispatcher)
        #expect(outcome.reasons == [.halted])
        #expect(outcome.allHalted)
        #expect(outcome.firstError == nil)
    }

    @Test("stop as a whole: vCPU 0's triple fault stops vCPU 1, which spins at ring 0 and never exits by itself")
    func stopAsAWhole() throws {
        let guest = try TestGuest("ud2", vcpus: 2)
        try guest.vm.memory.writeBytes(0x30000, Payload.bytes("spin"))
        var regs = try guest.vm.vcpus[1].registers()
        regs.rip = 0x30000
        try guest.vm.vcpus[1].setRegisters(regs)
        let outcome = try VMSupervisor(vm: guest.vm, detectHalt: false).run(guest.dispatcher)
        #expect(outcome.firstError == 0)
        #expect(outcome.reasons == [.shutdown, .requested])
    }

    @Test("the monitor never resumes a vCPU someone else paused")
    func respectsPause() throws {
        let guest = try TestGuest("spin", irqchip: true)
        let supervisor = VMSupervisor(vm: guest.vm, detectHalt: true, pollInterval: 0.001)
        nonisolated(unsafe) var outcome: VMSupervisor.Outcome?
        let done = DispatchSemaphore(value: 0)
        let dispatcher = guest.dispatcher
        Thread.detachNewThread {
            outcome = try? supervisor.run(dispatcher)
            done.signal()
        }
        while !guest.vcpu.isRunning { sched_yield() }
        guest.vcpu.pause()
        let seen = supervisor.inspections
        while supervisor.inspections < seen + 3 { sched_yield() } // it looked three times while paused
        #expect(guest.vcpu.isPaused)
        guest.vm.requestStop(.requested)
        done.wait()
        #expect(outcome?.reasons == [.requested])
        #expect(outcome?.allHalted == false)
    }

    /// The launcher opens its control API in `started`: a client must then see the VM
    /// running and be able to pause it (before the threads exist a vCPU reads as stopped).
    @Test("started runs once every vCPU thread exists: a controller then reads the VM as running and pauses it")
    func startedCallback() throws {
        let guest = try TestGuest("user_spin", ring: 3, vcpus: 2)
        let controller = VMController(vm: guest.vm)
        #expect(controller.info().state == .stopped) // not started yet: what the API must not show
        var seen: [VCPURunState] = []
        let outcome = try VMSupervisor(vm: guest.vm, detectHalt: false).run(guest.dispatcher) {
            seen.append(controller.info().state)
            do { try controller.pause() } catch { Issue.record("pause in started: \(error)") }
            seen.append(controller.info().state)
            guest.vm.requestStop(.requested)
        }
        #expect(seen == [.running, .paused])
        #expect(outcome.reasons == [.requested, .requested])
    }
}
