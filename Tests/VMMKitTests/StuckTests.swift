import CKVM
import Glibc
import Testing
@testable import VMMKit

@Suite("Stuck vCPU detection on a scripted vCPU")
struct StuckTests {
    let fault = ScriptedVCPU.Step.annotatedFault(gpa: 0x5000, size: 0x1000).at(rip: 0x40_1000)

    @Test("rule 4: the same fault 3 times in a row stops the vCPU; the handler is called twice")
    func stuckAfterThree() throws {
        let s = try Scripted([fault, fault, fault, .hlt])
        let reason = s.run()
        #expect(s.faults.all.count == 2)
        #expect(s.script.entries == 3)
        let rest = "; last exits (oldest first): " + Array(repeating: "rc -1 EFAULT (errno 14): memory fault at guest-physical 0x5000, 4096 bytes", count: 3).joined(separator: " | ")
        #expect(reason == .stuck("vCPU 0 at RIP 0x401000: the same memory fault at guest-physical 0x5000 (4096 bytes, flags 0x0), EFAULT (errno 14), 3 times in a row with no other exit in between; its handler did not resolve it" + rest))
    }

    @Test("rule 4: any other exit in between resets the count")
    func resetByOtherExit() throws {
        let s = try Scripted([fault, fault, .pioOut(port: 0x10, size: 1, value: 1), fault, fault, .hlt])
        try s.dispatcher.registerPIO(port: 0x10, owner: "test") { _, _ in .handled }
        #expect(s.run() == .halted)
        #expect(s.faults.all.count == 4)
    }

    @Test("rule 4: a different fault resets the count; a kick does not")
    func differentFaultAndKick() throws {
        let other = ScriptedVCPU.Step.annotatedFault(gpa: 0x6000, size: 0x1000)
        let s = try Scripted([fault, fault, other, fault, .interrupted, fault, fault, .hlt])
        let reason = s.run()
        #expect(s.faults.all.map(\.location?.gpa) == [0x5000, 0x5000, 0x6000, 0x5000, 0x5000])
        guard case .stuck = reason else { Issue.record("expected stuck, got \(reason)"); return }
    }

    @Test("rule 4: a HLT in between (the hot loop's, with no fault bookkeeping of its own) resets the count")
    func resetByHalt() throws {
        let s = try Scripted([fault, fault, .hlt, fault, fault, .hlt])
        var halts = 0
        try s.dispatcher.register(.hlt, owner: "test") { _, _ in halts += 1; return halts == 1 ? .handled : .stop(.halted) }
        #expect(s.run() == .halted)
        #expect(s.faults.all.count == 4)
    }

    @Test("rule 4: a fault an interrupt hook makes continues the run; any other exit it makes breaks it")
    func hookMadeExits() throws {
        let made = MemoryFault(errno: EFAULT, gpa: 0x5000, size: 0x1000)
        // Fault, fault, kick that the hook turns into the same fault: the third in a row.
        let same = try Scripted([fault, fault, .interrupted, .hlt])
        same.vcpu.hooks.onInterrupt = { _ in .memoryFault(made) }
        guard case .stuck = same.run() else { Issue.record("expected stuck on the hook's fault"); return }
        #expect(same.faults.all.count == 2)
        // The hook's HLT is no history record, yet it breaks the run: the next two
        // faults are a run of two, not four.
        let other = try Scripted([fault, fault, .interrupted, fault, fault, .hlt])
        other.vcpu.hooks.onInterrupt = { _ in .hlt }
        var halts = 0
        try other.dispatcher.register(.hlt, owner: "test") { _, _ in halts += 1; return halts == 1 ? .handled : .stop(.halted) }
        #expect(other.run() == .halted)
        #expect(other.faults.all.count == 4)
        #expect(halts == 2)
    }

    @Test("rule 4: the limit is configurable")
    func configurable() throws {
        let s = try Scripted(Array(repeating: fault, count: 6) + [.hlt])
        s.vcpu.canary.faultRepeatLimit = 5
        guard case .stuck = s.run() else { Issue.record("expected stuck"); return }
        #expect(s.faults.all.count == 4)
    }

    @Test("rule 4: un-annotated faults count as the same only at the same RIP")
    func unannotatedByRIP() throws {
        let bare = ScriptedVCPU.Step.failure(errno: EFAULT)
        let moving = try Scripted([bare.at(rip: 0x1000), bare.at(rip: 0x2000), bare.at(rip: 0x3000), .hlt])
        #expect(moving.run() == .halted)
        #expect(moving.faults.all.count == 3)
        let s = try Scripted([bare.at(rip: 0x1000), bare, bare])
        let reason = s.run()
        #expect(reason.description.hasPrefix("stuck: vCPU 0 at RIP 0x1000: the same un-annotated memory fault (no address), EFAULT (errno 14), 3 times in a row"))
    }

    @Test("an un-annotated fault nobody handles stops with a diagnosis naming vCPU, RIP, errno and the last exits")
    func unhandledDiagnosis() throws {
        let s = try Scripted([.hlt, ScriptedVCPU.Step.failure(errno: EFAULT).at(rip: 0x40_2000)], recordFaults: false)
        try s.dispatcher.register(.hlt, owner: "test") { _, _ in .handled }
        #expect(s.run() == .memoryFault("unresolved memory fault with no address (not annotated), EFAULT (errno 14), vCPU 0 at RIP 0x402000; last exits (oldest first): rc 0: KVM_EXIT_HLT | rc -1 EFAULT (errno 14): un-annotated memory fault (no address)"))
    }

    @Test("a script that runs out says so")
    func exhausted() throws {
        let s = try Scripted([.pioOut(port: 0x10, size: 1, value: 1)])
        try s.dispatcher.registerPIO(port: 0x10, owner: "test") { _, _ in .handled }
        #expect(s.run() == .error(.invalidArgument("scripted vCPU 0 has played all its 1 steps")))
    }
}
