import CKVM
import Glibc
import Testing
@testable import VMMKit

/// A scripted vCPU with a dispatcher: the run loop above `enter()` is the real one.
final class Scripted {
    let script: ScriptedVCPU
    let vcpu: VCPU
    let dispatcher = ExitDispatcher()
    let faults = Recorder<MemoryFault>()

    init(_ steps: [ScriptedVCPU.Step], recordFaults: Bool = true) throws {
        script = ScriptedVCPU(steps: steps)
        vcpu = VCPU(id: 0, backend: script, memory: .detached())
        if recordFaults {
            try dispatcher.register(.memoryFault, owner: "test") { [faults] exit, _ in
                if case let .memoryFault(f) = exit { faults.append(f) }
                return .handled
            }
        }
    }

    func run() -> StopReason { vcpu.runLoop(dispatcher) }

    /// Bytes [offset, offset+count) of the buffer as the core left it before entry `i`.
    func entry(_ i: Int, _ offset: Int, _ count: Int) -> [UInt8] {
        Array(script.entrySnapshots[i][offset..<(offset + count)])
    }
}

let poison4 = [UInt8](repeating: 0xa5, count: 4)
let poison24 = [UInt8](repeating: 0xa5, count: 24)

func anomaly(_ reason: StopReason) -> ExitAnomaly? {
    if case let .error(.exitAnomaly(a)) = reason { return a }
    return nil
}

@Suite("Exit canary on a scripted vCPU")
struct CanaryTests {
    @Test("rule 1: the record is poisoned before the first entry and after an exit that needs no completion")
    func poisonsWhenNothingIsPending() throws {
        let s = try Scripted([.hlt, .hlt])
        var halts = 0
        try s.dispatcher.register(.hlt, owner: "test") { _, _ in halts += 1; return halts == 1 ? .handled : .stop(.halted) }
        #expect(s.run() == .halted)
        for i in 0..<2 {
            #expect(s.entry(i, 8, 4) == poison4)
            #expect(s.entry(i, 32, 24) == poison24)
            #expect(s.entry(i, 56, 288 - 56) == [UInt8](repeating: 0, count: 288 - 56))
            #expect(s.entry(i, 0, 8) == [UInt8](repeating: 0, count: 8))
        }
    }

    @Test("rule 1: never poisoned while an IN, MMIO read or RDMSR answer waits for the kernel")
    func noPoisonBeforeCompletion() throws {
        let s = try Scripted([
            .pioIn(port: 0x11, size: 4),
            .mmio(address: 0xd000_0000, length: 8, isWrite: false),
            .exit(reason: UInt32(KVM_EXIT_X86_RDMSR), union: [0, 0, 0, 0, 0, 0, 0, 0] + le(UInt32(2)) + le(UInt32(0x4b56_4d00))),
            .hlt,
        ])
        try s.dispatcher.registerPIO(port: 0x11, owner: "test") { io, _ in io.value = 0x1234_5678; return .handled }
        try s.dispatcher.registerMMIO(address: 0xd000_0000, length: 0x1000, owner: "test") { a, _ in
            a.data = 0x1122_3344_5566_7788; return .handled
        }
        try s.dispatcher.register(.rdmsr, owner: "test") { exit, _ in
            if case var .rdmsr(m) = exit { m.data = 0xfeed_f00d; exit = .rdmsr(m) }
            return .handled
        }
        #expect(s.run() == .halted)
        // Entry 1: the IN record intact, the answer at data_offset.
        #expect(s.entry(1, 8, 4) == le(UInt32(KVM_EXIT_IO)))
        #expect(s.entry(1, 32, 16) == [0, 4] + le(UInt16(0x11)) + le(UInt32(1)) + le(UInt64(4096)))
        #expect(s.entry(1, 4096, 4) == [0x78, 0x56, 0x34, 0x12])
        // Entry 2: the MMIO record intact, the read data in mmio.data.
        #expect(s.entry(2, 8, 4) == le(UInt32(KVM_EXIT_MMIO)))
        #expect(s.entry(2, 32, 21) == le(UInt64(0xd000_0000)) + le(UInt64(0x1122_3344_5566_7788)) + le(UInt32(8)) + [0])
        // Entry 3: the RDMSR value in msr.data, error 0.
        #expect(s.entry(3, 8, 4) == le(UInt32(KVM_EXIT_X86_RDMSR)))
        #expect(s.entry(3, 32, 24) == [0, 0, 0, 0, 0, 0, 0, 0] + le(UInt32(2)) + le(UInt32(0x4b56_4d00)) + le(UInt64(0xfeed_f00d)))
    }

    @Test("rule 2: rc 0 with the poison still in place: the kernel reported nothing, nothing dispatched")
    func noExitReported() throws {
        let s = try Scripted([ScriptedVCPU.Step(writes: []).at(rip: 0x10_0040)])
        let reason = s.run()
        #expect(anomaly(reason)?.kind == .noExitReported)
        #expect(reason.description == "vCPU 0 at RIP 0x100040: KVM_RUN returned 0 but exit_reason still holds the canary's poison: the kernel reported no exit; last exits (oldest first): rc 0: untrusted record, exit_reason 0xa5a5a5a5")
    }

    @Test("rule 2: rc 0 with exit 39 is a protocol violation, not a memory fault")
    func memoryFaultWithoutError() throws {
        let s = try Scripted([.exit(reason: UInt32(KVM_EXIT_MEMORY_FAULT), union: le(UInt64(0)) + le(UInt64(0x5000)) + le(UInt64(4096)))])
        #expect(anomaly(s.run())?.kind == .memoryFaultWithoutError)
        #expect(s.faults.all.isEmpty)
    }

    @Test("rule 2 / seed case A: an annotation written over a pending MMIO exit makes an impossible record, never dispatched")
    func clobberedRecord() throws {
        // The kernel set up an MMIO read, then annotated a fault over it (gpa over data,
        // size 4096 over len) and completed the exit anyway.
        let mmio = ScriptedVCPU.Step.mmio(address: 0xd000_0000, length: 4, isWrite: false)
        var clobbered = mmio
        clobbered.writes.append(.init(40, le(UInt64(0x7000)) + le(UInt64(4096))))
        let s = try Scripted([clobbered.at(rip: 0x10_0010)])
        var called = false
        try s.dispatcher.registerMMIO(address: 0xd000_0000, length: 0x1000, owner: "test") { _, _ in called = true; return .handled }
        let reason = s.run()
        #expect(anomaly(reason)?.kind == .clobberedRecord(reason: 6, detail: "MMIO length 4096 (not 1 to 8 bytes)"))
        #expect(!called)
        #expect(reason.description.hasPrefix("vCPU 0 at RIP 0x100010: clobbered exit record: exit reason 6 (KVM_EXIT_MMIO) with MMIO length 4096 (not 1 to 8 bytes)"))
    }

    @Test("rule 2: I/O records with an impossible size or data outside the page are clobbered")
    func clobberedIO() throws {
        var bad = ScriptedVCPU.Step.pioOut(port: 0x10, size: 1, value: 0x41)
        bad.writes.append(.init(33, [3]))
        #expect(anomaly(try Scripted([bad]).run())?.kind == .clobberedRecord(reason: 2, detail: "I/O element size 3 is not 1, 2 or 4"))
        var outside = ScriptedVCPU.Step.pioOut(port: 0x10, size: 1, value: 0x41)
        outside.writes.append(.init(40, le(UInt64(1 << 20))))
        let kind = anomaly(try Scripted([outside]).run())?.kind
        #expect(kind == .clobberedRecord(reason: 2, detail: "I/O data (1 x 1 bytes at offset 1048576) lies outside the 12288-byte kvm_run page"))
    }

    @Test("rule 2: -1 EFAULT with a fresh exit 39 is an annotated fault with gpa, size and flags")
    func annotatedFault() throws {
        let s = try Scripted([.annotatedFault(gpa: 0x5000, size: 0x1000, flags: 8), .hlt])
        #expect(s.run() == .halted)
        #expect(s.faults.all == [MemoryFault(errno: EFAULT, gpa: 0x5000, size: 0x1000, flags: 8)])
    }

    @Test("rule 2: EHWPOISON is a memory fault too, with its errno")
    func hwPoison() throws {
        let s = try Scripted([.annotatedFault(errno: EHWPOISON, gpa: 0x9000, size: 0x1000), .failure(errno: EHWPOISON), .hlt],
                             recordFaults: false)
        // Only a handler that replaced the backing gets the vCPU re-entered after poison.
        try s.dispatcher.register(.memoryFault, owner: "test") { [faults = s.faults] exit, _ in
            if case let .memoryFault(f) = exit { faults.append(f) }
            return .backingReplaced
        }
        #expect(s.run() == .halted)
        #expect(s.faults.all == [MemoryFault(errno: EHWPOISON, gpa: 0x9000, size: 0x1000, flags: 0),
                                 MemoryFault.unannotated(errno: EHWPOISON)])
    }

    @Test("rule 2: -1 EFAULT with the poison intact, or with KVM_EXIT_UNKNOWN written, is an un-annotated fault")
    func unannotatedFault() throws {
        let s = try Scripted([.failure(errno: EFAULT), .failure(errno: EFAULT, writes: [.init(8, le(UInt32(0)))]), .hlt])
        #expect(s.run() == .halted)
        let bare = MemoryFault.unannotated(errno: EFAULT)
        #expect(s.faults.all == [bare, bare])
    }

    @Test("rule 2 / seed case B: a stale annotation after a resolved fault is not reported again")
    func staleAnnotation() throws {
        // The first fault is annotated and resolved; the second is bare. Without the
        // poison the old exit 39 and gpa would still be in the page.
        let s = try Scripted([.annotatedFault(gpa: 0x5000, size: 0x1000), .failure(errno: EFAULT), .hlt])
        #expect(s.run() == .halted)
        #expect(s.faults.all == [MemoryFault(errno: EFAULT, gpa: 0x5000, size: 0x1000, flags: 0),
                                 MemoryFault.unannotated(errno: EFAULT)])
        #expect(s.entry(1, 8, 4) == poison4)
        #expect(s.entry(1, 32, 24) == poison24)
    }

    @Test("rule 2: a reason left from a pending exit (page not poisoned) is stale, not a failed exit")
    func staleReasonFromPendingExit() throws {
        let s = try Scripted([.pioIn(port: 0x11, size: 1), .failure(errno: EFAULT), .hlt])
        try s.dispatcher.registerPIO(port: 0x11, owner: "test") { io, _ in io.value = 7; return .handled }
        #expect(s.run() == .halted)
        #expect(s.faults.all == [MemoryFault.unannotated(errno: EFAULT)])
    }

    @Test("rule 2 / seed: an exit set up and then failed with EFAULT is never dispatched")
    func exitSetUpThenFailed() throws {
        var failed = ScriptedVCPU.Step.pioOut(port: 0x10, size: 1, value: 0x41)
        failed.rc = -1
        failed.errno = EFAULT
        let s = try Scripted([failed.at(rip: 0x10_0000)])
        var called = false
        try s.dispatcher.registerPIO(port: 0x10, owner: "test") { _, _ in called = true; return .handled }
        let reason = s.run()
        #expect(anomaly(reason)?.kind == .exitSetUpThenFailed(reason: 2))
        #expect(!called && s.faults.all.isEmpty)
        #expect(reason.description.hasPrefix("vCPU 0 at RIP 0x100000: KVM_RUN failed with EFAULT (errno 14) after setting up exit 2 (KVM_EXIT_IO)"))
    }

    @Test("rule 2: exit 39 with its fields still poisoned is a half-written annotation")
    func halfWritten() throws {
        let s = try Scripted([.failure(errno: EFAULT, writes: [.init(8, le(UInt32(KVM_EXIT_MEMORY_FAULT)))])])
        #expect(anomaly(s.run())?.kind == .halfWrittenAnnotation)
        #expect(s.faults.all.isEmpty)
    }

    @Test("rule 2: any other errno is an error even with a stale exit 39 in the page")
    func otherErrnoWithStale39() throws {
        let s = try Scripted([.failure(errno: EINVAL, writes: [.init(8, le(UInt32(KVM_EXIT_MEMORY_FAULT))),
                                                               .init(32, le(UInt64(0)) + le(UInt64(0x5000)) + le(UInt64(4096)))])])
        let reason = s.run()
        #expect(reason == .error(.ioctlFailed(name: "KVM_RUN", errno: .invalidArgument)))
        #expect(reason.description == "KVM_RUN failed: Invalid argument (errno 22)")
        #expect(s.faults.all.isEmpty)
    }

    @Test("rule 2: EINTR and EAGAIN are kicks: nothing dispatched, a pending answer is not poisoned")
    func kicks() throws {
        let s = try Scripted([.pioIn(port: 0x11, size: 1), .interrupted, .failure(errno: EAGAIN), .hlt])
        var calls = 0
        try s.dispatcher.registerPIO(port: 0x11, owner: "test") { io, _ in calls += 1; io.value = 0x5a; return .handled }
        #expect(s.run() == .halted)
        #expect(calls == 1 && s.faults.all.isEmpty)
        #expect(s.entry(2, 8, 4) == le(UInt32(KVM_EXIT_INTR)))
        #expect(s.entry(2, 4096, 1) == [0x5a])
        #expect(s.entry(3, 32, 4) == [0, 1] + le(UInt16(0x11)))
    }

    @Test("rule 3 / seed case C: an annotation never clobbers the record of the exit being handled")
    func annotationDoesNotClobberHandledExit() throws {
        let s = try Scripted([.mmio(address: 0xd000_0000, length: 4, isWrite: false),
                              .annotatedFault(gpa: 0x7000, size: 0x1000), .hlt])
        let seen = Recorder<MMIOAccess>()
        try s.dispatcher.registerMMIO(address: 0xd000_0000, length: 0x1000, owner: "test") { a, _ in
            seen.append(a); a.data = 0xcafe_f00d; return .handled
        }
        #expect(s.run() == .halted)
        #expect(seen.all.map(\.address) == [0xd000_0000] && seen.all.map(\.length) == [4])
        // The answer reached the page before the entry, untouched by the later annotation.
        #expect(s.entry(1, 40, 12) == le(UInt64(0xcafe_f00d)) + le(UInt32(4)))
        #expect(s.faults.all.map(\.location?.gpa) == [0x7000])
        let recent = s.vcpu.canary.recentExits.map(\.description)
        #expect(recent == ["rc 0: MMIO read at 0xd0000000, 4 bytes",
                           "rc -1 EFAULT (errno 14): memory fault at guest-physical 0x7000, 4096 bytes",
                           "rc 0: KVM_EXIT_HLT"])
    }
}
