import CKVM
import Glibc
import Synchronization
import Testing
@testable import VMMKit

/// Threads, kicks, pause/resume and teardown on real KVM.
@Suite("vCPU control on real KVM", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct ControlTests {
    @Test("a vCPU spinning in ring-0 guest code stops promptly on request", arguments: [0, 3])
    func stopSpinning(ring: Int) throws {
        let guest = try TestGuest(ring == 0 ? "spin" : "user_spin", ring: ring)
        try guest.vcpu.start(guest.dispatcher)
        sleepMilliseconds(50)
        #expect(guest.vcpu.isRunning)
        #expect(guest.vcpu.stop() == .requested)
        #expect(!guest.vcpu.isRunning)
    }

    @Test("VirtualMachine.run that cannot start every vCPU stops and joins the ones it started before it throws")
    func runPartialStart() throws {
        let guest = try TestGuest("spin", vcpus: 2)
        defer { guest.vm.close() }
        try guest.vm.vcpus[1].start(guest.dispatcher) // the caller's own: run cannot start it again
        #expect(throws: VMMError.invalidArgument("vCPU thread already started")) { _ = try guest.vm.run(guest.dispatcher) }
        #expect(!guest.vm.vcpus[0].isRunning, "vCPU 0 ran the guest on, unjoined")
        #expect(guest.vm.vcpus[1].isRunning, "the caller's vCPU is the caller's to stop")
        #expect(guest.vm.vcpus[1].stop() == .requested)
    }

    @Test("vmcall never returns from KVM_RUN here, but a kick still gets the vCPU out")
    func vmcallIsStoppable() throws {
        let guest = try TestGuest("vmcall")
        try guest.vcpu.start(guest.dispatcher)
        sleepMilliseconds(50)
        #expect(guest.vcpu.stop() == .requested)
    }

    @Test("pause parks the vCPU outside KVM_RUN; state is readable; resume continues")
    func pauseResume() throws {
        let guest = try TestGuest("user_spin", ring: 3)
        try guest.vcpu.start(guest.dispatcher)
        sleepMilliseconds(20)
        guest.vcpu.pause()
        #expect(guest.vcpu.isPaused)
        let regs = try guest.vcpu.registers()
        #expect(regs.rip == GuestLayout.codeStart)
        let sregs = try guest.vcpu.specialRegisters()
        #expect(sregs.cs.dpl == 3)
        guest.vcpu.resume()
        // `isPaused` turns false when the vCPU thread wakes, which a loaded machine may
        // take longer than any fixed pause to schedule.
        #expect(eventually { !guest.vcpu.isPaused })
        #expect(guest.vcpu.isRunning)
        #expect(guest.vcpu.stop() == .requested)
    }

    /// What another thread does to hand a vCPU work (PluginHost's async-PF posts, the
    /// fault router): publish it, then kick. A kick that lands while the vCPU is parked
    /// must still reach the interrupt hook after the resume.
    final class PostedWork: Sendable {
        let posted = Atomic<Bool>(false), delivered = Atomic<Bool>(false)
    }

    @Test("work posted with a kick while the vCPU is paused reaches its interrupt hook after the resume, though the guest spins at ring 3 and never exits")
    func kickWhileParked() throws {
        let guest = try TestGuest("user_spin", ring: 3)
        let work = PostedWork()
        guest.vcpu.hooks.onInterrupt = { _ in
            if work.posted.load(ordering: .acquiring) { work.delivered.store(true, ordering: .releasing) }
            return nil
        }
        try guest.vcpu.start(guest.dispatcher)
        guest.vcpu.pause()
        work.posted.store(true, ordering: .releasing)
        ckvm_set_immediate_exit(guest.vcpu.unsafeRunPage, 1)
        guest.vcpu.signalThread()
        guest.vcpu.resume()
        #expect(eventually { work.delivered.load(ordering: .acquiring) }, "the posted work was never delivered")
        #expect(guest.vcpu.stop() == .requested)
    }

    @Test("pauses from two threads at once: each returns only once the vCPU is parked")
    func concurrentPauses() throws {
        let guest = try TestGuest("user_spin", ring: 3)
        try guest.vcpu.start(guest.dispatcher)
        let vcpu = guest.vcpu
        let parked = Recorder<Bool>()
        for _ in 0..<50 {
            let threads = (0..<2).map { _ in spawn { vcpu.pause(); parked.append(vcpu.isPaused) } }
            threads.forEach { pthread_join($0, nil) }
            vcpu.resume()
            parked.append(vcpu.isPaused) // the other pause still holds it
            vcpu.resume()
        }
        #expect(parked.all.count == 150)
        #expect(parked.all.allSatisfy { $0 })
        #expect(vcpu.stop() == .requested)
    }

    @Test("pauses nest: the halt monitor's resume after an inspection does not release a vCPU the control API paused meanwhile")
    func nestedPauses() throws {
        let (guest, outs) = try outLoopGuest()
        try guest.vcpu.start(guest.dispatcher)
        #expect(eventually { outs.load(ordering: .relaxed) > 50 })
        #expect(guest.vcpu.pauseIfRunning()) // VMSupervisor.inspect pauses it
        guest.vcpu.pause() // meanwhile VMController.pause (PATCH /vm Paused) returns
        guest.vcpu.resume() // the inspection ends
        let held = outs.load(ordering: .relaxed)
        // A window in which a running guest makes hundreds of exits; the vCPU must stay
        // parked (a snapshot taken now would otherwise capture a running vCPU).
        #expect(!eventually(tries: 50) { outs.load(ordering: .relaxed) != held || !guest.vcpu.isPaused })
        guest.vcpu.resume() // PATCH /vm Resumed
        #expect(eventually { outs.load(ordering: .relaxed) > held + 50 })
        #expect(guest.vcpu.stop() == .requested)
    }

    @Test("2 and 8 vCPUs run concurrently in one VM, each with its own result", arguments: [2, 8])
    func multipleVCPUs(count: Int) throws {
        let guest = try TestGuest("user_sum", ring: 3, vcpus: count)
        let sums = Recorder<(UInt32, UInt64)>()
        let low = Recorder<(UInt32, UInt32)>()
        for (i, vcpu) in guest.vm.vcpus.enumerated() {
            var regs = try vcpu.registers()
            regs.rdi = UInt64(i + 1) * 1_000_000
            regs.rsi = UInt64(100 + i)
            try vcpu.setRegisters(regs)
        }
        try guest.dispatcher.registerPIO(port: 0x20, owner: "test") { io, vcpu in low.append((vcpu.id, io.value)); return .handled }
        try guest.dispatcher.registerPIO(port: 0x21, owner: "test") { io, vcpu in
            let lo = low.all.last { $0.0 == vcpu.id }!.1
            sums.append((vcpu.id, UInt64(io.value) << 32 | UInt64(lo)))
            return .handled
        }
        try guest.dispatcher.registerPIO(port: 0xf4, owner: "test") { io, _ in .stop(.guestExit(code: Int32(io.value))) }
        let reasons = try guest.vm.run(guest.dispatcher)
        #expect(reasons == (0..<count).map { .guestExit(code: Int32(100 + $0)) })
        for i in 0..<count {
            let n = UInt64(i + 1) * 1_000_000
            #expect(sums.all.first { $0.0 == UInt32(i) }?.1 == n * (n + 1) / 2)
        }
    }

    @Test("a handler can stop the whole VM; every vCPU returns")
    func vmWideStop() throws {
        let guest = try TestGuest("user_spin", ring: 3, vcpus: 3)
        for vcpu in guest.vm.vcpus { try vcpu.start(guest.dispatcher) }
        sleepMilliseconds(20)
        guest.vm.requestStop(.guestExit(code: 7))
        #expect(guest.vm.vcpus.map { $0.join() } == Array(repeating: .guestExit(code: 7), count: 3))
        #expect(guest.vm.stopReason == .guestExit(code: 7))
    }

    @Test("200 VMs created, run and torn down: fds and mappings return to where they were")
    func noLeaks() throws {
        let kvm = try KVM.open()
        // Warm up lazily created process-wide state first (signal handler, runtime caches).
        do { let g = try TestGuest("hlt"); _ = try g.run() }
        let fds = openFDs()
        let maps = mappingCount()
        for i in 0..<200 {
            let vm = try kvm.createVM()
            try vm.memory.addRegion(name: "ram", guestAddress: 0, size: 2 << 20, backing: i % 2 == 0 ? .anonymous : .memfd)
            try vm.memory.writeBytes(GuestLayout.codeStart, Payload.bytes("hlt"))
            let vcpu = try vm.createVCPU()
            try vcpu.setupLongMode(entry: GuestLayout.codeStart, stack: 0x80000)
            if i % 20 == 0 { #expect(try vm.run(ExitDispatcher()) == [.halted]) }
            vm.close()
        }
        #expect(fdsOpened(since: fds) == [])
        #expect(mappingsUnreliable || mappingCount() <= maps) // fewer: a glibc arena heap of an earlier test's threads released; more: a leak
    }

    @Test("registering a handler after the vCPUs started is refused")
    func frozenDispatcher() throws {
        let guest = try TestGuest("user_spin", ring: 3)
        try guest.vcpu.start(guest.dispatcher)
        #expect {
            try guest.dispatcher.registerPIO(port: 0x99, owner: "late") { _, _ in .handled }
        } throws: { ($0 as? VMMError)?.description == "late: handlers must be registered before the vCPUs start" }
        guest.vcpu.stop()
    }
}
