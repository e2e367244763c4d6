import CKVM
import Glibc
import Testing
@testable import VMMKit
import VMMPaging

/// Handlers that log every call and answer deterministically, installed the same way
/// on a real run and on its replay.
final class LoggingHandlers {
    let log = Recorder<String>()

    func install(on dispatcher: ExitDispatcher) throws {
        try dispatcher.registerPIO(port: 0x11, owner: "log") { [log] io, _ in
            io.value = [1: 0xab, 2: 0xbeef, 4: 0x1234_5678][io.size]!
            log.append("in \(io.size) -> \(hex(io.value))")
            return .handled
        }
        try dispatcher.registerPIO(port: 0x12, owner: "log") { [log] io, _ in
            log.append("out \(hex(io.value))"); return .handled
        }
        try dispatcher.registerMMIO(address: TestGuest.mmioBase, length: 0x1000, owner: "log") { [log] a, vcpu in
            if !a.isWrite { a.data = 0x0102_0304_0506_0708 >> (64 - 8 * UInt64(a.length)) }
            let rip = (try? vcpu.registers().rip) ?? 0
            log.append("mmio \(a.isWrite ? "w" : "r") \(hex(a.address)) \(a.length) \(hex(a.data)) rip \(hex(rip))")
            return .handled
        }
    }
}

@Suite("Record and replay")
struct ReplayTests {
    @Test("a recording survives its text form byte for byte, and bad files are refused with the line named")
    func fileFormat() throws {
        let entry = ExitRecording.Entry(vcpu: 1, rc: -1, errno: 14, coreWrites: [.init(8, [0xa5, 0xa5])],
                                        kernelBytes: [.init(0, [1, 2, 3]), .init(4096, [0xff])],
                                        registerReads: [[UInt8](repeating: 7, count: MemoryLayout<Registers>.size)])
        let first = ExitRecording.Entry(vcpu: 1, rc: 0, errno: 0, coreWrites: nil, kernelBytes: [.init(8, [2, 0, 0, 0])], registerReads: [])
        let recording = ExitRecording(entries: [first, entry])
        #expect(try ExitRecording(parsing: recording.serialized()) == recording)
        #expect(recording.serialized().hasPrefix("vmmkit-exit-recording v1\nentry 1 rc=0 errno=0 core=? kernel=8:02000000\nentry 1 rc=-1 errno=14 core=8:a5a5 kernel=0:010203,4096:ff\nregs 1 0707"))
        #expect(throws: VMMError.invalidArgument("recording: line 1 is 'hello', expected 'vmmkit-exit-recording v1'")) {
            try ExitRecording(parsing: "hello\n")
        }
        #expect(throws: VMMError.invalidArgument("recording line 2: '8:zz' is not <offset>:<hex bytes>")) {
            try ExitRecording(parsing: "vmmkit-exit-recording v1\nentry 0 rc=0 errno=0 core=? kernel=8:zz\n")
        }
        // An offset or a vCPU is digits only, as `serialized` writes them.
        #expect(throws: VMMError.invalidArgument("recording line 2: '-8:02' is not <offset>:<hex bytes>")) {
            try ExitRecording(parsing: "vmmkit-exit-recording v1\nentry 0 rc=0 errno=0 core=? kernel=-8:02\n")
        }
        #expect(throws: VMMError.invalidArgument("recording line 2: '+8:02' is not <offset>:<hex bytes>")) {
            try ExitRecording(parsing: "vmmkit-exit-recording v1\nentry 0 rc=0 errno=0 core=? kernel=+8:02\n")
        }
        #expect(throws: VMMError.invalidArgument("recording line 2: expected '<kind> <vcpu> ...': 'entry +0 rc=0 errno=0 core=? kernel=8:02'")) {
            try ExitRecording(parsing: "vmmkit-exit-recording v1\nentry +0 rc=0 errno=0 core=? kernel=8:02\n")
        }
        #expect(throws: VMMError.invalidArgument("recording line 2: an entry needs rc=, errno=, core= and kernel=: 'entry 0 rc=+0 errno=0 core=? kernel=8:02'")) {
            try ExitRecording(parsing: "vmmkit-exit-recording v1\nentry 0 rc=+0 errno=0 core=? kernel=8:02\n")
        }
        #expect(throws: VMMError.invalidArgument("recording line 2: an entry needs rc=, errno=, core= and kernel=: 'entry 0 rc=-2147483649 errno=0 core=? kernel=8:02'")) {
            try ExitRecording(parsing: "vmmkit-exit-recording v1\nentry 0 rc=-2147483649 errno=0 core=? kernel=8:02\n")
        }
        #expect(try ExitRecording(parsing: "vmmkit-exit-recording v1\nentry 0 rc=-2147483648 errno=0 core=? kernel=8:02\n").entries[0].rc == .min)
        // A negative offset built in code, not parsed, is still refused at replay.
        let negative = ExitRecording(entries: [.init(vcpu: 0, rc: 0, errno: 0, coreWrites: nil, kernelBytes: [.init(-4, [1, 2])], registerReads: [])])
        #expect(throws: VMMError.invalidArgument("recording: entry 0 of vCPU 0 writes 2 bytes at offset -4, outside kvm_run (12288 bytes)")) {
            _ = try ScriptedVCPU(replaying: negative, vcpu: 0)
        }
    }

    @Test("register reads go to their vCPU's newest entry, however many of other vCPUs' entries come between (each was searched for backwards: 64,000 took a minute); a file over the limit is refused, not read whole")
    func manyEntries() throws {
        let n = 20_000
        var text = "vmmkit-exit-recording v1\nentry 0 rc=0 errno=0 core=? kernel=8:02\n"
        text += String(repeating: "entry 1 rc=0 errno=0 core=? kernel=8:02\n", count: n)
        text += String(repeating: "regs 0 00\nregs 1 01\n", count: n)
        let recording = try ExitRecording(parsing: text)
        #expect(recording.entries.count == n + 1)
        #expect(recording.entries[0].registerReads == [[UInt8]](repeating: [0], count: n))
        #expect(recording.entries[n].registerReads == [[UInt8]](repeating: [1], count: n))
        #expect(recording.entries[1].registerReads.isEmpty)

        let path = try VMMProcess.scratch("replay", "big") + "/big.rec"
        try recording.write(to: path)
        let size = recording.serialized().utf8.count
        #expect(try ExitRecording.load(from: path, maxBytes: size) == recording)
        #expect(throws: VMMError.invalidArgument("recording \(path): over \(size - 1) bytes")) {
            try ExitRecording.load(from: path, maxBytes: size - 1)
        }
    }

    @Test("replay checks that the core hands back the recorded data")
    func replayDetectsDifferentAnswers() throws {
        let recording = ExitRecording(entries: [
            .init(vcpu: 0, rc: 0, errno: 0, coreWrites: nil,
                  kernelBytes: ScriptedVCPU.Step.pioIn(port: 0x11, size: 1).writes, registerReads: []),
            .init(vcpu: 0, rc: 0, errno: 0, coreWrites: [.init(4096, [0x42])],
                  kernelBytes: ScriptedVCPU.Step.hlt.writes, registerReads: []),
        ])
        let script = try ScriptedVCPU(replaying: recording, vcpu: 0)
        let vcpu = VCPU(id: 0, backend: script, memory: .detached())
        let dispatcher = ExitDispatcher()
        try dispatcher.registerPIO(port: 0x11, owner: "test") { io, _ in io.value = 0x43; return .handled }
        #expect(vcpu.runLoop(dispatcher) == .halted)
        #expect(script.mismatches == ["entry 1: the core wrote [4096:43] where the record has [4096:42]"])
    }
}

@Suite("Record on real KVM, replay without it", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct RecordReplayKVMTests {
    @Test("a recorded run replays with the same handler calls, completions and stop reason")
    func recordThenReplay() throws {
        let path = "/tmp/vmmkit-recording-\(getpid()).txt"
        defer { unlink(path) }
        var realLog: [String] = []
        var realStop: StopReason?
        for payload in ["pio_in", "mmio"] {
            let guest = try TestGuest(payload)
            let handlers = LoggingHandlers()
            try handlers.install(on: guest.dispatcher)
            let recorder = guest.vcpu.startRecording()
            realStop = try guest.run()
            realLog = handlers.log.all
            #expect(realStop == .halted)
            #expect(!realLog.isEmpty)
            try recorder.recording.write(to: path)

            // Replay: no /dev/kvm, no VM, same handlers.
            let recording = try ExitRecording.load(from: path)
            #expect(recording == recorder.recording)
            let script = try ScriptedVCPU(replaying: recording, vcpu: 0)
            let vcpu = VCPU(id: 0, backend: script, memory: .detached())
            let dispatcher = ExitDispatcher()
            let replayed = LoggingHandlers()
            try replayed.install(on: dispatcher)
            #expect(vcpu.runLoop(dispatcher) == realStop)
            #expect(replayed.log.all == realLog)
            #expect(script.mismatches == [])
            #expect(script.entries == recording.entries.count)
        }
    }
}

@Suite("Replay a demand-paged run without KVM", .enabled(if: KVMAvailability.present, KVMAvailability.reason),
       .enabled(if: UserfaultfdAvailability.present, UserfaultfdAvailability.reason))
struct PagingReplayTests {
    @Test("a SIGBUS-mode ring-0 paging run replays on detached memory: same pages fetched, same completions")
    func replayPagedRun() throws {
        let guest = try PagedGuest("dp_straddle", ring: 0, mode: .sigbus, setup: PagingTests.straddleSetup)
        let recorder = guest.vm.vcpus[0].startRecording()
        try #require(try guest.run() == [.guestExit(code: 0)])
        let fetched = guest.pager.statistics.pagesFetched
        let recording = try ExitRecording(parsing: recorder.recording.serialized())

        // No VM: detached memory with the same region, the same pager and page source.
        let memory = GuestMemory.detached()
        try memory.addRegion(name: "ram", guestAddress: 0, size: PagedGuest.ramSize)
        let pager = try DemandPager(memory: memory, region: "ram", source: SnapshotFilePageSource(path: guest.snapshotPath), mode: .sigbus)
        let script = try ScriptedVCPU(replaying: recording, vcpu: 0)
        let vcpu = VCPU(id: 0, backend: script, memory: memory)
        let dispatcher = ExitDispatcher()
        let values = Recorder<UInt32>()
        try dispatcher.registerPIO(port: 0x20, count: 2, owner: "test") { io, _ in values.append(io.value); return .handled }
        try dispatcher.registerPIO(port: 0xf4, owner: "test") { _, _ in .stop(.guestExit(code: 0)) }
        try pager.attach(to: dispatcher, vcpus: [vcpu])
        #expect(vcpu.runLoop(dispatcher) == .guestExit(code: 0))
        #expect(script.mismatches == [])
        #expect(pager.statistics.pagesFetched == fetched)
        let value = guest.snapshotQword(0x10_1000 - 2)
        #expect(values.all == [UInt32(truncatingIfNeeded: value), UInt32(value >> 32)])
        // The writes the guest made through MMIO exits landed in the replayed memory too.
        #expect(try memory.read(0x10_3000 - 2, as: UInt64.self) == 0x1122_3344_5566_7788)
    }
}

@Suite("Record with plugins on real KVM, replay the plugins without it",
       .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct PluginReplayTests {
    /// What a plugin author does: record once on a machine with KVM, then test the
    /// plugin against the recording anywhere (a detached VM: no /dev/kvm is opened).
    @Test("a run through the C and Swift plugins replays through the same plugins, with the same completions",
          arguments: [("plugin_scratch", ["ScratchDevice"]), ("plugin_debug_exit", ["DebugExit", "ScratchDevice,port=0x600,mmio=0"])])
    func recordThenReplayPlugins(payload: String, plugins: [String]) throws {
        let (guest, host) = try PluginFixtures.guest(payload)
        for spec in plugins {
            let parts = spec.split(separator: ",", maxSplits: 1).map(String.init)
            try host.load(parts[0], config: parts.count > 1 ? parts[1] : "")
        }
        let recorder = guest.vcpu.startRecording()
        let realStop = try guest.run()
        host.close()
        let text = recorder.recording.serialized()

        let vm = VirtualMachine.detached()
        defer { vm.close() }
        let script = try ScriptedVCPU(replaying: ExitRecording(parsing: text), vcpu: 0)
        let vcpu = VCPU(id: 0, backend: script, memory: vm.memory)
        try vm.adoptReplayVCPU(vcpu)
        let dispatcher = ExitDispatcher()
        let replayHost = PluginHost(vm: vm, dispatcher: dispatcher)
        defer { replayHost.close() }
        for spec in plugins {
            let parts = spec.split(separator: ",", maxSplits: 1).map(String.init)
            try replayHost.load(parts[0], config: parts.count > 1 ? parts[1] : "")
        }
        #expect(vcpu.runLoop(dispatcher) == realStop)
        #expect(vm.stopReason == guest.vm.stopReason)
        #expect(script.mismatches == [], "the plugins handed back exactly what they did on KVM")
        #expect(script.entries == recorder.recording.entries.count)
        #expect(vm.fd == -1 && vm.kvm.fd.rawValue == -1, "no KVM was opened for the replay")
    }
}
