import Testing
@testable import VMMKit

/// The async page fault state machine, rule by rule, on a recording fake vCPU.
@Suite struct AsyncPFStateTests {
    static let area: UInt64 = 0x20000
    static let vector: UInt64 = 0xf3
    static let enableValue = area | AsyncPFABI.enabled | AsyncPFABI.deliveryAsInterrupt
    typealias Event = FakeAsyncPFEnvironment.Event

    /// A vCPU whose guest has set the vector, then enabled interrupt delivery.
    func enabled(policy: AsyncPFPolicy = AsyncPFPolicy(), extra: UInt64 = 0) throws -> (AsyncPFVCPUState, FakeAsyncPFEnvironment) {
        let env = FakeAsyncPFEnvironment()
        let state = AsyncPFVCPUState(vcpuID: 1, policy: policy)
        #expect(try state.writeMSR(AsyncPFABI.msrInterrupt, value: Self.vector, env: env) == .accepted)
        #expect(try state.writeMSR(AsyncPFABI.msrEnable, value: Self.enableValue | extra, env: env) == .accepted)
        #expect(state.isEnabled)
        return (state, env)
    }

    var flags: UInt64 { Self.area + AsyncPFABI.flagsOffset }
    var tokenSlot: UInt64 { Self.area + AsyncPFABI.tokenOffset }

    // MARK: MSRs

    @Test func interruptDeliveryBeforeTheVectorIsSetIsGP() throws {
        let env = FakeAsyncPFEnvironment()
        let state = AsyncPFVCPUState(vcpuID: 0)
        #expect(try state.writeMSR(AsyncPFABI.msrEnable, value: Self.enableValue, env: env)
            == .generalProtection("MSR_KVM_ASYNC_PF_EN: interrupt delivery enabled before MSR_KVM_ASYNC_PF_INT set the vector"))
        #expect(!state.isEnabled)
        #expect(state.readMSR(AsyncPFABI.msrEnable) == 0)
        #expect(try state.writeMSR(AsyncPFABI.msrInterrupt, value: Self.vector, env: env) == .accepted)
        #expect(try state.writeMSR(AsyncPFABI.msrEnable, value: Self.enableValue, env: env) == .accepted)
        #expect(state.isEnabled)
        #expect(state.readMSR(AsyncPFABI.msrEnable) == Self.enableValue)
        #expect(state.readMSR(AsyncPFABI.msrInterrupt) == Self.vector)
        #expect(state.readMSR(AsyncPFABI.msrAck) == 0)
        #expect(state.readMSR(0x10) == nil)
    }

    @Test func invalidMSRWritesAreGP() throws {
        let (state, env) = try enabled()
        #expect(try state.writeMSR(AsyncPFABI.msrEnable, value: Self.enableValue | 0x10, env: env)
            == .generalProtection("MSR_KVM_ASYNC_PF_EN: reserved bits 5:4 set in 0x20019"))
        #expect(try state.writeMSR(AsyncPFABI.msrEnable, value: Self.enableValue | 0x20, env: env)
            == .generalProtection("MSR_KVM_ASYNC_PF_EN: reserved bits 5:4 set in 0x20029"))
        #expect(try state.writeMSR(AsyncPFABI.msrEnable, value: Self.enableValue | AsyncPFABI.deliveryAsPFVMExit, env: env)
            == .generalProtection("MSR_KVM_ASYNC_PF_EN: delivery as #PF vmexit is not advertised"))
        #expect(try state.writeMSR(AsyncPFABI.msrEnable, value: 0x4000_0000 | 9, env: env)
            == .generalProtection("MSR_KVM_ASYNC_PF_EN: area 0x40000000 is not guest RAM"))
        // An area in the top 64 bytes of the address space (area + 64 trapped).
        #expect(try state.writeMSR(AsyncPFABI.msrEnable, value: 0xffff_ffff_ffff_ffc1, env: env)
            == .generalProtection("MSR_KVM_ASYNC_PF_EN: area 0xffffffffffffffc0 is not guest RAM"))
        #expect(try state.writeMSR(AsyncPFABI.msrInterrupt, value: 0x1f3, env: env)
            == .generalProtection("MSR_KVM_ASYNC_PF_INT: reserved bits set in 0x1f3"))
        #expect(try state.writeMSR(AsyncPFABI.msrInterrupt, value: 14, env: env)
            == .generalProtection("MSR_KVM_ASYNC_PF_INT: vector 14 is an exception vector"))
        // None of the refused writes changed anything.
        #expect(state.readMSR(AsyncPFABI.msrEnable) == Self.enableValue)
        #expect(state.readMSR(AsyncPFABI.msrInterrupt) == Self.vector)
        #expect(try state.writeMSR(0x1b, value: 0, env: env) == nil)
    }

    @Test func msrsAreGPWhenTheFeatureIsNotAdvertised() throws {
        let env = FakeAsyncPFEnvironment()
        let state = AsyncPFVCPUState(vcpuID: 0, policy: AsyncPFPolicy(featuresAdvertised: false))
        for msr in AsyncPFABI.msrs {
            #expect(try state.writeMSR(msr, value: 0, env: env)
                == .generalProtection("MSR \(String(msr, radix: 16, uppercase: false).withHexPrefix) written but async PF is not advertised in CPUID"))
        }
    }

    // MARK: Not present

    @Test func tokenSequenceWrapsFromAnyRestoredValue() throws {
        // A restored state (a snapshot's) may hold any sequence number: the next token
        // wraps instead of trapping on `nextID + 1`.
        let (state, env) = try enabled()
        var saved = state.saved
        saved.nextID = 0xffff_ffff
        state.restore(saved)
        let token = try #require(try state.pageMissing(0x20_0123, env: env).token)
        #expect(token == 0xffff_f001, "\(String(token, radix: 16))")
        #expect(state.saved.nextID == 0)
    }

    @Test func notPresentAtCPL3() throws {
        let (state, env) = try enabled()
        let outcome = try state.pageMissing(0x20_0123, env: env)
        let token = try #require(outcome.token)
        #expect(token != 0 && token & 0xfff == 1)
        #expect(env.events == [.pageFault(address: UInt64(token), errorCode: 0)])
        #expect(env.memory[flags] == AsyncPFABI.reasonPageNotPresent)
        #expect(state.inFlight?.page == 0x20_0000)
        #expect(state.outstanding == [token: 0x20_0000])
        env.enterGuest()
        #expect(env.cr2 == UInt64(token))
    }

    enum Condition: String, CaseIterable, Sendable {
        case cpl0 = "CPL 0", ifClear = "IF clear", pagingOff = "paging off", eventPending = "event pending", flagsSet = "flags not clear"
        func apply(_ e: FakeAsyncPFEnvironment) {
            switch self {
            case .cpl0: e.cpl = 0
            case .ifClear: e.interruptFlag = false
            case .pagingOff: e.paging = false
            case .eventPending: e.otherEventPending = true
            case .flagsSet: e.memory[0x20000] = 1
            }
        }
    }

    @Test(arguments: Condition.allCases)
    func deliveryConditionNotMetFetchesSynchronously(_ condition: Condition) throws {
        let (state, env) = try enabled(extra: AsyncPFABI.sendAlways)
        condition.apply(env)
        #expect(try state.pageMissing(0x20_5008, env: env) == .fetchedSynchronously, "\(condition)")
        #expect(env.events == [.fetch(0x20_5000)], "\(condition)")
        #expect(state.inFlight == nil && state.outstanding.isEmpty, "\(condition)")
        #expect(state.statistics.synchronousFetches == 1)
    }

    @Test func disabledOrPollingOnlyFetchesSynchronously() throws {
        let env = FakeAsyncPFEnvironment()
        let state = AsyncPFVCPUState(vcpuID: 0)
        #expect(try state.pageMissing(0x20_0000, env: env) == .fetchedSynchronously)
        // Enabled without interrupt delivery: the pre-5.9 mode, not offered.
        #expect(try state.writeMSR(AsyncPFABI.msrEnable, value: Self.area | AsyncPFABI.enabled, env: env) == .accepted)
        #expect(try state.pageMissing(0x20_1000, env: env) == .fetchedSynchronously)
        #expect(env.events == [.fetch(0x20_0000), .fetch(0x20_1000)])
    }

    @Test func cpl0NeedsSendAlwaysAndThePolicyFlag() throws {
        // Send-always set by the guest, but the default policy keeps CPL 0 synchronous.
        let (plain, env1) = try enabled(extra: AsyncPFABI.sendAlways)
        env1.cpl = 0
        #expect(try plain.pageMissing(0x20_0000, env: env1) == .fetchedSynchronously)
        // Policy allows it, guest did not ask for send-always: still synchronous.
        let permissive = AsyncPFPolicy(allowKernelModeDelivery: true)
        let (noSendAlways, env2) = try enabled(policy: permissive)
        env2.cpl = 0
        #expect(try noSendAlways.pageMissing(0x20_0000, env: env2) == .fetchedSynchronously)
        // Both: delivered at CPL 0.
        let (both, env3) = try enabled(policy: permissive, extra: AsyncPFABI.sendAlways)
        env3.cpl = 0
        #expect(try both.pageMissing(0x20_0000, env: env3).token != nil)
    }

    @Test func secondFaultWhileOneIsInFlightIsSynchronous() throws {
        let (state, env) = try enabled()
        let first = try #require(try state.pageMissing(0x20_0000, env: env).token)
        env.enterGuest()
        // The guest has not cleared flags yet (nothing else may fault before it does).
        #expect(try state.pageMissing(0x20_1000, env: env) == .fetchedSynchronously)
        // It clears flags; the next exit acknowledges, and the next fault is async again.
        env.memory[flags] = 0
        #expect(try state.exit(env: env) == nil)
        #expect(state.inFlight == nil)
        let second = try #require(try state.pageMissing(0x20_2000, env: env).token)
        #expect(second != first)
    }

    @Test func refaultOnAnOutstandingPageHaltsUntilReady() throws {
        let (state, env) = try enabled()
        let token = try #require(try state.pageMissing(0x20_3000, env: env).token)
        env.enterGuest()
        env.memory[flags] = 0
        _ = try state.exit(env: env)
        // Another task touches the same page before it arrives.
        #expect(try state.pageMissing(0x20_3ff8, env: env) == .halted)
        #expect(state.haltedOn == 0x20_3000)
        try state.pageReady(token: token, env: env)
        #expect(state.haltedOn == nil)
        #expect(env.events == [.pageFault(address: UInt64(token), errorCode: 0), .halt, .wake, .interrupt(0xf3)])
        #expect(state.statistics.halts == 1)
    }

    // MARK: Ready and ack

    @Test func readyAndAckWithTwoPages() throws {
        let (state, env) = try enabled()
        let t1 = try #require(try state.pageMissing(0x20_0000, env: env).token)
        env.enterGuest(); env.memory[flags] = 0; _ = try state.exit(env: env)
        let t2 = try #require(try state.pageMissing(0x20_1000, env: env).token)
        env.enterGuest(); env.memory[flags] = 0; _ = try state.exit(env: env)
        env.events.removeAll()

        try state.pageReady(token: t1, env: env)
        try state.pageReady(token: t2, env: env)
        // Only the first goes out; the second waits for the ack.
        #expect(env.events == [.interrupt(0xf3)])
        #expect(env.memory[tokenSlot] == t1)
        #expect(state.readyPending == t1 && state.readyQueue == [t2])
        env.enterGuest()
        // The guest consumes the token but has not acked: still nothing.
        env.memory[tokenSlot] = 0
        _ = try state.exit(env: env)
        #expect(env.events == [.interrupt(0xf3)])
        // The ack delivers the next one.
        #expect(try state.writeMSR(AsyncPFABI.msrAck, value: 1, env: env) == .accepted)
        #expect(env.events == [.interrupt(0xf3), .interrupt(0xf3)])
        #expect(env.memory[tokenSlot] == t2)
        #expect(state.readyPending == t2 && state.readyQueue.isEmpty)
        #expect(state.outstanding.isEmpty)
        #expect(state.statistics.readyInjected == 2)
    }

    @Test func ackWithTheTokenSlotStillFullWaitsForIt() throws {
        let (state, env) = try enabled()
        let t1 = try #require(try state.pageMissing(0x20_0000, env: env).token)
        env.enterGuest(); env.memory[flags] = 0; _ = try state.exit(env: env)
        let t2 = try #require(try state.pageMissing(0x20_1000, env: env).token)
        env.enterGuest(); env.memory[flags] = 0; _ = try state.exit(env: env)
        try state.pageReady(token: t1, env: env)
        try state.pageReady(token: t2, env: env)
        env.enterGuest()
        // A buggy or slow guest acks before emptying the slot: t2 must not overwrite t1.
        _ = try state.writeMSR(AsyncPFABI.msrAck, value: 1, env: env)
        #expect(env.memory[tokenSlot] == t1 && state.readyQueue == [t2])
        env.memory[tokenSlot] = 0
        _ = try state.exit(env: env)
        #expect(env.memory[tokenSlot] == t2 && state.readyPending == t2)
    }

    // MARK: The race (seed 2) and its bound

    @Test func realPageFaultWhileAsyncIsUnreadIsDeferredAndCR2NeverClobbered() throws {
        let (state, env) = try enabled()
        let token = try #require(try state.pageMissing(0x20_0000, env: env).token)
        env.enterGuest()
        #expect(env.cr2 == UInt64(token))
        // The VMM needs a real #PF now (e.g. an emulated access faulted) and an NMI.
        #expect(try state.injectPageFault(address: 0xdead_b000, errorCode: 6, env: env) == false)
        #expect(try state.injectNMI(env: env) == false)
        #expect(state.deferredPageFault?.address == 0xdead_b000 && state.deferredNMI)
        // Exits come and go while the guest has not read CR2/flags: nothing is injected.
        for _ in 0..<5 {
            #expect(try state.exit(env: env) == nil)
            env.enterGuest()
            #expect(env.cr2 == UInt64(token))
        }
        #expect(env.events == [.pageFault(address: UInt64(token), errorCode: 0)])
        // The guest reads CR2 and flags, then clears flags; the next exit delivers both.
        #expect(env.cr2 == UInt64(token) && env.memory[flags] == 1)
        env.memory[flags] = 0
        #expect(try state.exit(env: env) == nil)
        #expect(state.inFlight == nil && state.deferredPageFault == nil && !state.deferredNMI)
        #expect(env.events == [.pageFault(address: UInt64(token), errorCode: 0),
                               .pageFault(address: 0xdead_b000, errorCode: 6), .nmi])
        env.enterGuest()
        #expect(env.cr2 == 0xdead_b000)
        #expect(state.statistics.deferredPageFaults == 1 && state.statistics.deferredNMIs == 1)
    }

    @Test func realPageFaultWithNothingUnreadGoesStraightIn() throws {
        let (state, env) = try enabled()
        #expect(try state.injectPageFault(address: 0x5000, errorCode: 2, env: env))
        env.enterGuest()
        #expect(try state.injectNMI(env: env))
        #expect(env.events == [.pageFault(address: 0x5000, errorCode: 2), .nmi])
    }

    @Test func guestThatNeverClearsFlagsGetsAConflictDiagnosis() throws {
        let (state, env) = try enabled(policy: AsyncPFPolicy(conflictExitBound: 3))
        let token = try #require(try state.pageMissing(0x20_7000, env: env).token)
        env.enterGuest()
        try state.injectPageFault(address: 0xbad0_0000, errorCode: 4, env: env)
        for _ in 0..<3 { #expect(try state.exit(env: env) == nil) }
        let conflict = try #require(try state.exit(env: env))
        #expect(conflict.message == "async-pf conflict: vCPU 1 left the async PF flags set (token \(UInt64(token).hexString) for page 0x207000) "
            + "for 3 exits while a real #PF at 0xbad00000 (error code 0x4) waited; injecting it would clobber CR2 and the reason")
        #expect(env.cr2 == UInt64(token))
    }

    // MARK: Disable

    @Test func disableDropsTheQueueClearsOutstandingAndWakesHaltedVCPU() throws {
        let (state, env) = try enabled()
        let t1 = try #require(try state.pageMissing(0x20_0000, env: env).token)
        env.enterGuest(); env.memory[flags] = 0; _ = try state.exit(env: env)
        let t2 = try #require(try state.pageMissing(0x20_1000, env: env).token)
        env.enterGuest(); env.memory[flags] = 0; _ = try state.exit(env: env)
        let t3 = try #require(try state.pageMissing(0x20_2000, env: env).token)
        env.enterGuest(); env.memory[flags] = 0; _ = try state.exit(env: env)
        try state.pageReady(token: t1, env: env)
        try state.pageReady(token: t2, env: env)
        #expect(try state.pageMissing(0x20_2000, env: env) == .halted)
        env.events.removeAll()

        #expect(try state.writeMSR(AsyncPFABI.msrEnable, value: 0, env: env) == .accepted)
        #expect(!state.isEnabled)
        #expect(state.readyQueue.isEmpty && state.readyPending == nil && state.outstanding.isEmpty && state.haltedOn == nil)
        #expect(env.events == [.wake])
        // The fetch for t3 completes later: nothing reaches the guest.
        try state.pageReady(token: t3, env: env)
        #expect(env.events == [.wake])
        #expect(try state.pageMissing(0x20_3000, env: env) == .fetchedSynchronously)
    }

    @Test func tokensAreUniqueAndNeverZero() throws {
        let (state, env) = try enabled()
        var seen = Set<UInt32>()
        for i in 0..<50 {
            let token = try #require(try state.pageMissing(0x20_0000 + UInt64(i) * 0x1000, env: env).token)
            #expect(token != 0 && token != AsyncPFABI.wakeAllToken)
            #expect(seen.insert(token).inserted)
            env.enterGuest(); env.memory[flags] = 0; _ = try state.exit(env: env)
        }
    }

    @Test("a guest that lets 64 tokens wait gets its next missing page synchronously, as KVM's ASYNC_PF_PER_VCPU")
    func tokensInUseAreBounded() throws {
        let (state, env) = try enabled()
        var tokens: [UInt32] = []
        for i in 0..<AsyncPFVCPUState.tokensInUseLimit {
            tokens.append(try #require(try state.pageMissing(0x20_0000 + UInt64(i) * 0x1000, env: env).token, "fault \(i)"))
            env.enterGuest(); env.memory[flags] = 0; _ = try state.exit(env: env)
        }
        // Before, the 65th fault got a token too, and the ready queue grew without bound.
        #expect(try state.pageMissing(0x30_0000, env: env) == .fetchedSynchronously)
        #expect(env.events.last == .fetch(0x30_0000))
        // One "ready" delivered (waiting for the guest's ack, no longer in use): room for one more.
        try state.pageReady(token: tokens[0], env: env)
        #expect(env.events.last == .interrupt(UInt8(Self.vector)))
        env.enterGuest()
        #expect(try state.pageMissing(0x30_1000, env: env).token != nil)
        #expect(state.saved.problem(vcpu: 1) == nil)
    }

    @Test("after the token sequence wraps, a token still waiting as a ready is not made again")
    func wrappedSequenceSkipsWaitingTokens() throws {
        let (state, env) = try enabled()
        var saved = state.saved
        // Tokens 0x4001 (delivered, not acknowledged) and 0x5001 (queued) from 2^20 tokens ago.
        (saved.readyPending, saved.readyQueue, saved.nextID) = (0x4001, [0x5001], 4)
        env.memory[tokenSlot] = 0x4001
        #expect(saved.problem(vcpu: 1) == nil)
        state.restore(saved)
        // Before, 0x4001 came back: one token for two pages, and a state restore refuses (fuzz-async-pf).
        #expect(try state.pageMissing(0x20_0000, env: env).token == 0x6001)
        #expect(state.saved.problem(vcpu: 1) == nil)
    }
}

extension AsyncPFFaultOutcome {
    var token: UInt32? { if case let .notPresentInjected(token) = self { token } else { nil } }
}

extension String {
    var withHexPrefix: String { "0x" + self }
}

extension UInt64 {
    var hexString: String { "0x" + String(self, radix: 16) }
}
