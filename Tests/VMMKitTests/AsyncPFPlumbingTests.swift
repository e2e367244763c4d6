import CKVM
import Testing
@testable import VMMKit

/// Each KVM piece of user-space async PF on its own, on real KVM.
@Suite("Async PF plumbing on real KVM", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct AsyncPFPlumbingTests {
    @Test("CPUID 0x40000001 advertises ASYNC_PF and ASYNC_PF_INT, never ASYNC_PF_VMEXIT")
    func cpuidBits() throws {
        for advertise in [true, false] {
            let guest = try TestGuest("apf_cpuid")
            try guest.vcpu.advertiseAsyncPF(advertise)
            #expect(try guest.run() == .halted)
            let eax = try guest.vm.memory.read(0x20000, as: UInt32.self)
            #expect((eax & AsyncPFABI.featureAsyncPF != 0) == advertise)
            #expect((eax & AsyncPFABI.featureAsyncPFInt != 0) == advertise)
            #expect(eax & AsyncPFABI.featureAsyncPFVMExit == 0)
            #expect(eax & 1 != 0, "KVM_FEATURE_CLOCKSOURCE stays as the kernel offers it")
        }
    }

    /// `earlier`: another filter first (the launcher routes the default plugin's MSRs
    /// before the irqchip), then the same set again in another order, which must be a
    /// no-op that keeps the filter, while the different set before it was replaced.
    @Test("The three MSRs reach user space through the filter; a refused write is #GP in the guest",
          arguments: [false, true])
    func msrFilter(earlier: Bool) throws {
        let guest = try TestGuest("apf_msr")
        if earlier {
            try guest.vm.enableUserSpaceMSRExits(reasons: UInt64(KVM_MSR_EXIT_REASON_FILTER))
            try guest.vm.denyMSRs([AsyncPFABI.msrInterrupt])
        }
        try guest.vm.prepareUserSpaceAsyncPF()
        if earlier { try guest.vm.denyMSRs(AsyncPFABI.msrs.reversed() + [AsyncPFABI.msrAck]) }
        #expect(guest.vm.installedMSRFilter.withLock { $0 } == AsyncPFABI.msrs.sorted())
        try guest.vcpu.advertiseAsyncPF()
        let state = AsyncPFVCPUState(vcpuID: 0)
        let env = KVMAsyncPFEnvironment(vcpu: guest.vcpu) { _ throws(VMMError) in }
        let seen = Recorder<String>()
        try guest.dispatcher.register(.wrmsr, owner: "test") { exit, _ in
            guard case var .wrmsr(access) = exit else { return .notMine }
            let result = try? state.writeMSR(access.index, value: access.data, env: env)
            seen.append("wr \(hex(access.index)) \(hex(access.data)) reason \(access.reason) -> \(String(describing: result))")
            if case .generalProtection = result { access.error = true }
            exit = .wrmsr(access)
            return .handled
        }
        try guest.dispatcher.register(.rdmsr, owner: "test") { exit, _ in
            guard case var .rdmsr(access) = exit else { return .notMine }
            access.data = state.readMSR(access.index) ?? 0
            seen.append("rd \(hex(access.index)) reason \(access.reason)")
            exit = .rdmsr(access)
            return .handled
        }
        #expect(try guest.run() == .halted)
        let filter = KVM_MSR_EXIT_REASON_FILTER
        #expect(seen.all == [
            "wr 0x4b564d06 0xf3 reason \(filter) -> Optional(AsyncPFCore.AsyncPFMSRResult.accepted)",
            "wr 0x4b564d02 0x20049 reason \(filter) -> Optional(AsyncPFCore.AsyncPFMSRResult.accepted)",
            "rd 0x4b564d02 reason \(filter)",
            "wr 0x4b564d07 0x1 reason \(filter) -> Optional(AsyncPFCore.AsyncPFMSRResult.accepted)",
            "wr 0x4b564d02 0x20059 reason \(filter) -> Optional(AsyncPFCore.AsyncPFMSRResult.generalProtection(\"MSR_KVM_ASYNC_PF_EN: reserved bits 5:4 set in 0x20059\"))",
        ])
        let memory = guest.vm.memory
        #expect(try memory.read(0x20000, as: UInt64.self) == 0x20049)
        #expect(try memory.read(0x20008, as: UInt64.self) == 0x6770, "the guest's #GP handler ran")
        #expect(try memory.read(0x20010, as: UInt64.self) == 0, "#GP error code")
        #expect(state.isEnabled && state.areaAddress == 0x20040)
    }

    @Test("#PF injected through KVM_SET_VCPU_EVENTS reaches the guest with the CR2 payload and error code")
    func injectPageFault() throws {
        let guest = try TestGuest("apf_inject_pf")
        try guest.vm.enableExceptionPayload()
        let errors = Recorder<VMMError>()
        try guest.dispatcher.registerPIO(port: 0x10, owner: "test") { _, vcpu in
            do throws(VMMError) { try vcpu.injectPageFault(address: 0xabc_d123, errorCode: 0x6) } catch { errors.append(error) }
            return .handled
        }
        #expect(try guest.run() == .halted)
        #expect(errors.all.isEmpty)
        let memory = guest.vm.memory
        #expect(try memory.read(0x20000, as: UInt64.self) == 0xabc_d123, "CR2")
        #expect(try memory.read(0x20008, as: UInt64.self) == 6, "error code")
        #expect(try memory.read(0x20010, as: UInt64.self) == memory.read(0x20018, as: UInt64.self), "return RIP is after the out")
    }

    @Test("Injecting #PF with a payload before enabling KVM_CAP_EXCEPTION_PAYLOAD is a clear error")
    func injectPageFaultWithoutPayloadCapability() throws {
        let guest = try TestGuest("apf_inject_pf")
        #expect(throws: VMMError.ioctlFailed(name: "KVM_SET_VCPU_EVENTS", errno: .invalidArgument)) {
            try guest.vcpu.injectPageFault(address: 0x1000, errorCode: 0)
        }
    }

    @Test("KVM_INTERRUPT waits for the interrupt window while IF = 0 and goes straight in when IF = 1")
    func interruptInjection() throws {
        let guest = try TestGuest("apf_interrupt")
        let env = KVMAsyncPFEnvironment(vcpu: guest.vcpu) { _ throws(VMMError) in }
        let log = Recorder<String>()
        try guest.dispatcher.registerPIO(port: 0x10, owner: "test") { _, _ in
            do throws(VMMError) { try env.injectInterrupt(vector: 0xf3) } catch { return .fail("\(error)") }
            log.append("request, waiting: \(env.pendingVector != nil)")
            return .handled
        }
        try guest.dispatcher.register(.irqWindowOpen, owner: "test") { _, _ in
            do throws(VMMError) { try env.flushInterrupt() } catch { return .fail("\(error)") }
            log.append("window, waiting: \(env.pendingVector != nil)")
            return .handled
        }
        #expect(try guest.run() == .halted)
        #expect(log.all == ["request, waiting: true", "window, waiting: false", "request, waiting: false"])
        #expect(try guest.vm.memory.read(0x20000, as: UInt32.self) == 2, "the handler ran twice")
        #expect(!guest.vcpu.requestInterruptWindow)
    }

    @Test("With an in-kernel irqchip the 'ready' vector goes to the local APIC as an MSI, held while IF = 0")
    func interruptThroughLAPIC() throws {
        let guest = try TestGuest("apf_interrupt_lapic", irqchip: true)
        let (vm, vcpu) = (guest.vm, guest.vcpu)
        let env = KVMAsyncPFEnvironment(vcpu: vcpu) { _ throws(VMMError) in }
        let dispatcher = ExitDispatcher()
        let requests = Recorder<Bool>()
        try dispatcher.registerPIO(port: 0x10, owner: "test") { _, _ in
            do throws(VMMError) { try env.injectInterrupt(vector: 0xf3) } catch { return .fail("\(error)") }
            requests.append(env.pendingVector != nil)
            return .handled
        }
        try dispatcher.registerPIO(port: 0xf4, owner: "test") { io, _ in .stop(.guestExit(code: Int32(io.value))) }
        // Exit code = the handler count: 2 means each request was delivered exactly once,
        // and the first not before the guest's `sti` (else the code would be 1).
        #expect(try vm.run(dispatcher) == [.guestExit(code: 2)])
        #expect(requests.all == [false, false], "nothing waits for a window: the LAPIC holds the vector")
        #expect(!vcpu.requestInterruptWindow)
    }

    @Test("denyMSRs refuses more ranges than KVM allows, naming the counts")
    func tooManyFilterRanges() throws {
        let guest = try TestGuest("hlt")
        let msrs = (0..<17).map { UInt32($0) * 0x1000 }
        #expect(throws: VMMError.invalidArgument("denyMSRs: 17 MSRs need 17 filter ranges; KVM allows 16")) {
            try guest.vm.denyMSRs(msrs)
        }
    }
}
