import CKVM
import Glibc
import Testing
@testable import VMMKit

/// Plugins on a detached VM (real guest memory, no /dev/kvm) driven by a scripted vCPU:
/// the faults this host's kernel never produces (annotated, EHWPOISON, unknown flags).
final class FaultRig {
    static let ram: UInt64 = 1 << 20
    /// Where the fault-probe fixtures write their traces.
    static let trace: UInt64 = 0x8_0000, rangeTrace: UInt64 = 0x9_0000
    /// Pages that hold a pattern before the run.
    static let patterned: [UInt64] = [0, 0x5000]

    let memory = GuestMemory.detached()
    let vm: VirtualMachine
    let script: ScriptedVCPU
    let vcpu: VCPU
    let dispatcher = ExitDispatcher()
    let host: PluginHost

    convenience init(_ steps: [ScriptedVCPU.Step], plugins: [(String, String)]) throws {
        try self.init(script: ScriptedVCPU(steps: steps), plugins: plugins)
    }

    init(script: ScriptedVCPU, plugins: [(String, String)]) throws {
        precondition(PluginFixtures.built, "scripts/build-plugins failed")
        try memory.addRegion(name: "ram", guestAddress: 0, size: Self.ram)
        for page in Self.patterned { try memory.writeBytes(page, Self.pattern(page)) }
        vm = .detached(memory: memory)
        self.script = script
        vcpu = VCPU(id: 0, backend: script, memory: memory)
        try vm.adoptReplayVCPU(vcpu)
        host = PluginHost(vm: vm, dispatcher: dispatcher)
        for (name, config) in plugins { try host.load(name, config: config) }
    }

    deinit {
        host.close()
        vm.close()
    }

    static func pattern(_ page: UInt64) -> [UInt8] {
        (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ Int(page >> 12) &+ 1) }
    }

    func run() -> StopReason { vcpu.runLoop(dispatcher) }

    func page(_ gpa: UInt64) throws -> [UInt8] { try memory.readBytes(gpa, count: 4096) }

    /// The records a fault-probe saw: [annotated, gpa, size, flags, known flags, errno].
    func traced(_ at: UInt64 = FaultRig.trace) throws -> [[UInt64]] {
        let count = try memory.read(at, as: UInt64.self)
        return try (0..<count).map { n in try (0..<6).map { try memory.read(at + 8 + 48 * n + 8 * $0, as: UInt64.self) } }
    }
}

let zeroFill = ("MemoryFault", "fill=zero,priority=-1000")
func probe(_ config: String) -> (String, String) { (PluginFixtures.fixture("FaultProbe"), config) }
let unresolvedBare = "unresolved memory fault with no address (not annotated), EFAULT (errno 14), vCPU 0 at RIP "

@Suite("Memory faults: which handler sees which fault (scripted vCPU, plugins, no pager)")
struct MemoryFaultRulesTests {
    @Test("MemoryFault fill=zero with no pager: an un-annotated EFAULT leaves guest page 0 byte-identical and stops with the diagnosis")
    func unannotatedAlone() throws {
        let rig = try FaultRig([.failure(errno: EFAULT).at(rip: 0x40_1000)], plugins: [zeroFill])
        #expect(rig.run() == .memoryFault(unresolvedBare + "0x401000; last exits (oldest first): rc -1 EFAULT (errno 14): un-annotated memory fault (no address)"))
        #expect(try rig.page(0) == FaultRig.pattern(0))
        #expect(rig.script.entries == 1, "never re-entered")
    }

    /// Seed case B: an annotated fault resolved, then a bare EFAULT whose page still
    /// holds the old annotation's bytes if nobody poisoned it.
    static let caseB: [ScriptedVCPU.Step] = [.annotatedFault(gpa: 0x5000, size: 0x1000).at(rip: 0x40_1000),
                                             .failure(errno: EFAULT).at(rip: 0x40_1004)]

    @Test("MemoryFault fill=zero with no pager: after a resolved annotated fault, a bare EFAULT leaves page 0 byte-identical")
    func unannotatedAfterAnnotated() throws {
        let rig = try FaultRig(Self.caseB, plugins: [zeroFill])
        let reason = rig.run()
        #expect(reason.description.hasPrefix(unresolvedBare + "0x401004; last exits (oldest first): rc -1 EFAULT (errno 14): memory fault at guest-physical 0x5000, 4096 bytes"), "\(reason)")
        #expect(try rig.page(0x5000) == [UInt8](repeating: 0, count: 4096), "the annotated fault was resolved by the plugin")
        #expect(try rig.page(0) == FaultRig.pattern(0))
        #expect(rig.script.entries == 2)
    }

    @Test("the same through a replayed recording on a detached VM: page 0 byte-identical, same stop, same completions")
    func unannotatedReplayed() throws {
        let original = try FaultRig(Self.caseB, plugins: [zeroFill])
        let recorder = original.vcpu.startRecording()
        let stop = original.run()
        let text = recorder.recording.serialized()

        let replay = try FaultRig(script: ScriptedVCPU(replaying: ExitRecording(parsing: text), vcpu: 0), plugins: [zeroFill])
        #expect(replay.run() == stop)
        #expect(replay.script.mismatches == [])
        #expect(try replay.page(0) == FaultRig.pattern(0))
        #expect(try replay.page(0x5000) == [UInt8](repeating: 0, count: 4096))
    }

    @Test("a fault without an address reaches only whole-space handlers, marked un-annotated with no location")
    func unannotatedOnlyWholeSpace() throws {
        let rig = try FaultRig([.failure(errno: EFAULT)],
                               plugins: [probe("trace=\(FaultRig.trace),priority=1"),
                                         probe("trace=\(FaultRig.rangeTrace),base=0,length=\(FaultRig.ram)"), zeroFill])
        #expect(rig.run() == .memoryFault(unresolvedBare + "0x0; last exits (oldest first): rc -1 EFAULT (errno 14): un-annotated memory fault (no address)"))
        #expect(try rig.traced() == [[0, UInt64.max, 0, 0, 8, UInt64(EFAULT)]])
        #expect(try rig.traced(FaultRig.rangeTrace) == [], "a range handler never sees a fault without an address")
        #expect(try rig.page(0) == FaultRig.pattern(0))
    }

    @Test("a located fault carries the raw flags and the host's known-flags mask; MemoryFault refuses unknown flags; the stop prints them")
    func unknownFlags() throws {
        let rig = try FaultRig([.annotatedFault(gpa: 0x5010, size: 8, flags: 0x18)],
                               plugins: [probe("trace=\(FaultRig.trace),base=0x5000,length=0x1000"), zeroFill])
        let reason = rig.run()
        #expect(reason.description.hasPrefix("unresolved memory fault at guest-physical 0x5010 (8 bytes, flags 0x18 (private; unknown to this host: 0x10)), EFAULT (errno 14), vCPU 0 at RIP 0x0"), "\(reason)")
        #expect(try rig.traced() == [[1, 0x5010, 8, 0x18, UInt64(KVM_MEMORY_EXIT_FLAG_PRIVATE), UInt64(EFAULT)]])
        #expect(try rig.page(0x5000) == FaultRig.pattern(0x5000), "not zero-filled")
    }

    @Test("an annotation of size 0 or past 2^64 is refused by the canary; a handler-made one by the dispatcher, before any handler")
    func impossibleLocation() throws {
        let zero = try Scripted([.annotatedFault(gpa: 0x5000, size: 0)])
        #expect(anomaly(zero.run())?.kind == .clobberedRecord(reason: 39, detail: "memory fault of 0 bytes at guest-physical 0x5000 (a fault covers 1 byte or more, below 2^64)"))
        let wraps = try Scripted([.annotatedFault(gpa: 0xffff_ffff_ffff_f000, size: 0x2000)])
        #expect(anomaly(wraps.run())?.kind == .clobberedRecord(reason: 39, detail: "memory fault of 8192 bytes at guest-physical 0xfffffffffffff000 (a fault covers 1 byte or more, below 2^64)"))
        #expect(zero.faults.all.isEmpty && wraps.faults.all.isEmpty)

        var made = VMExit.memoryFault(MemoryFault(errno: EFAULT, gpa: 0x5000, size: 0))
        let s = try Scripted([])
        #expect(s.dispatcher.dispatch(&made, on: s.vcpu).stopReason
            == .memoryFault("memory fault record of 0 bytes at guest-physical 0x5000 refused before any handler saw it (a located fault covers 1 byte or more, below 2^64), EFAULT (errno 14), vCPU 0 at RIP 0x0"))
        #expect(s.faults.all.isEmpty)
    }
}

@Suite("Hardware poison (EHWPOISON) is a typed stop")
struct HardwarePoisonTests {
    static let poisoned: [ScriptedVCPU.Step] = [.annotatedFault(errno: EHWPOISON, gpa: 0x5000, size: 0x1000), .hlt]
    static let location = MemoryFault.Location(gpa: 0x5000, size: 0x1000)

    @Test("a handler answering handled does not get the vCPU re-entered on poisoned memory")
    func handledIsNotEnough() throws {
        let s = try Scripted(Self.poisoned)
        guard case let .hardwarePoison(location, diagnosis) = s.run() else { Issue.record("not a hardware-poison stop"); return }
        #expect(location == Self.location)
        #expect(diagnosis.hasPrefix("hardware-poisoned memory at guest-physical 0x5000 (4096 bytes, flags 0x0), EHWPOISON (errno 133), vCPU 0 at RIP 0x0: a handler answered handled without replacing the backing"))
        #expect(s.script.entries == 1)
    }

    @Test("un-annotated poison nobody handles stops with no location")
    func unannotated() throws {
        let s = try Scripted([.failure(errno: EHWPOISON).at(rip: 0x40_2000)], recordFaults: false)
        guard case let .hardwarePoison(location, diagnosis) = s.run() else { Issue.record("not a hardware-poison stop"); return }
        #expect(location == nil)
        #expect(diagnosis.hasPrefix("hardware-poisoned memory with no address (not annotated), EHWPOISON (errno 133), vCPU 0 at RIP 0x402000: no handler replaced the backing"))
    }

    @Test("through plugins: VMM_BACKING_REPLACED re-enters, VMM_HANDLED stops, MemoryFault fill=zero refuses it")
    func plugins() throws {
        let replaced = try FaultRig(Self.poisoned, plugins: [probe("trace=\(FaultRig.trace),verdict=replaced")])
        #expect(replaced.run() == .halted)
        #expect(try replaced.traced().map { $0[5] } == [UInt64(EHWPOISON)])

        let handled = try FaultRig(Self.poisoned, plugins: [probe("trace=\(FaultRig.trace),verdict=handled")])
        guard case .hardwarePoison(Self.location, _) = handled.run() else { Issue.record("not a hardware-poison stop"); return }
        #expect(handled.script.entries == 1)

        let zero = try FaultRig(Self.poisoned, plugins: [zeroFill])
        guard case let .hardwarePoison(location, diagnosis) = zero.run() else { Issue.record("not a hardware-poison stop"); return }
        #expect(location == Self.location && diagnosis.contains("no handler replaced the backing"))
        #expect(try zero.page(0x5000) == FaultRig.pattern(0x5000))
    }
}

extension ExitVerdict {
    var stopReason: StopReason? {
        if case let .stop(reason) = self { return reason }
        return nil
    }
}
