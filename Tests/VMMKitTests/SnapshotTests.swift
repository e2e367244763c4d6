import CKVM
import Foundation
import Glibc
import Testing
@testable import VMMKit
@testable import VMMSnapshot

/// Snapshot and restore on real KVM: a guest paused mid-run, saved, and resumed in a
/// new process (Tests/SnapshotRunner) finishes exactly as an uninterrupted run does.
@Suite("Snapshot and restore on real KVM", .serialized, .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct SnapshotTests {
    /// What each vCPU reports when nothing interrupts it.
    static func uninterrupted(vcpus: Int, irqchip: Bool, pit: Bool) throws -> [UInt32: [UInt32]] {
        let g = try SnapshotGuest(vcpus: vcpus, irqchip: irqchip, pit: pit, released: true)
        #expect(try g.runToEnd() == Array(repeating: .guestExit(code: 0), count: vcpus))
        return g.allReports
    }

    func checkRoundTrip(vcpus: Int, irqchip: Bool, pit: Bool) throws {
        let full = try Self.uninterrupted(vcpus: vcpus, irqchip: irqchip, pit: pit)
        #expect(full.count == vcpus && full.values.allSatisfy { $0.count == Int(SnapshotGuest.rounds) })
        let scratch = ScratchDir("roundtrip")
        let dir = scratch.sub("snap")
        let g = try SnapshotGuest(vcpus: vcpus, irqchip: irqchip, pit: pit, released: false)
        try g.snapshotAtGate(to: dir)
        let before = g.allReports
        g.guest.vm.close()
        for id in 0..<UInt32(vcpus) {
            #expect(before[id] == Array(full[id]!.prefix(Int(SnapshotGuest.gate))), "vCPU \(id) before the gate")
        }
        // Sparse: the 8 MiB guest has a few hundred KiB of non-zero pages.
        var st = stat()
        #expect(stat(dir + "/memory.bin", &st) == 0 && st.st_size == 8 << 20 && Int(st.st_blocks) * 512 < 2 << 20)

        let lazy = try RunnerResult.restore(dir)
        let eager = try RunnerResult.restore(dir, eager: true)
        for r in [lazy, eager] {
            #expect(r.status == 0 && r.stderr == "", "\(r.stderr)")
            #expect(r.stops == (0..<vcpus).map { "\($0) guest exit with code 0" })
            for id in 0..<UInt32(vcpus) {
                #expect(r.reports[id] == Array(full[id]!.dropFirst(Int(SnapshotGuest.gate))), "vCPU \(id) after restore")
            }
        }
        #expect(lazy.reports == eager.reports)
        #expect(lazy.fetched > 0 && eager.fetched == 0)
    }

    @Test("one ring-3 vCPU paused at its gate, restored in a new process (lazy and eager), reports what an uninterrupted run reports")
    func oneVCPU() throws {
        try checkRoundTrip(vcpus: 1, irqchip: false, pit: false)
    }

    @Test("two vCPUs with the in-kernel irqchip and PIT, restored in a new process, finish like an uninterrupted run")
    func twoVCPUsIRQChip() throws {
        try checkRoundTrip(vcpus: 2, irqchip: true, pit: true)
    }

    @Test("working set: a restore records the pages it touched; the next one prefetches them and finishes identically")
    func workingSetPrefetch() throws {
        let scratch = ScratchDir("workingset")
        let dir = try Self.baseSnapshot(scratch)
        let first = try RunnerResult.restore(dir, flags: ["--record-working-set"])
        #expect(first.status == 0 && first.fetched > 0, "\(first.stderr)")
        let image = try SnapshotImage(path: dir)
        #expect(image.workingSet.count == first.fetched)
        let second = try RunnerResult.restore(dir, flags: ["--prefetch"])
        #expect(second.status == 0, "\(second.stderr)")
        #expect(second.reports == first.reports && second.stops == first.stops)
        // Every page the guest needs was in the set: prefetch plus faults fetch no more
        // than the first run did (how many the thread installed before the vCPU faulted
        // them is a race, so it is not asserted here).
        #expect(second.fetched == first.fetched)
        // Prefetch finished before the vCPU starts: the thread installed the whole set
        // and the guest faults nothing more in.
        let upFront = try RunnerResult.restore(dir, flags: ["--prefetch-first"])
        #expect(upFront.status == 0 && upFront.reports == first.reports)
        #expect(upFront.prefetched == first.fetched && upFront.fetched == first.fetched, "\(upFront)")
        let eager = try RunnerResult.restore(dir, eager: true)
        #expect(eager.reports == first.reports)
    }

    /// A valid snapshot to damage, shared by the refusal tests.
    static func baseSnapshot(_ scratch: ScratchDir) throws -> String {
        let dir = scratch.sub("base")
        let g = try SnapshotGuest(vcpus: 1, released: false)
        try g.snapshotAtGate(to: dir)
        g.guest.vm.close()
        return dir
    }

    static func copy(_ dir: String, to name: String, in scratch: ScratchDir) throws -> String {
        let target = scratch.sub(name)
        try FileManager.default.copyItem(atPath: dir, toPath: target)
        return target
    }

    /// Restoring `dir` fails with exactly one line containing `message`, and leaves the
    /// directory exactly as it was.
    func expectRefused(_ dir: String, _ message: String) throws {
        let before = try directoryFingerprint(dir)
        let r = try RunnerResult.restore(dir)
        #expect(r.status == 1)
        #expect(r.stderr.hasSuffix("\n") && r.stderr.filter { $0 == "\n" }.count == 1, "one line: \(r.stderr)")
        #expect(r.stderr.contains(message), "\(r.stderr)")
        #expect(r.reports.isEmpty && r.stops.isEmpty)
        #expect(try directoryFingerprint(dir) == before)
    }

    @Test("truncated, corrupt and foreign snapshots are refused with one line naming the file; nothing on disk changes")
    func refusals() throws {
        let scratch = ScratchDir("refusals")
        let base = try Self.baseSnapshot(scratch)

        let truncatedMemory = try Self.copy(base, to: "trunc-mem", in: scratch)
        #expect(truncate(truncatedMemory + "/memory.bin", 4 << 20) == 0)
        try expectRefused(truncatedMemory, "memory.bin has 4194304 bytes; the manifest says 8388608 (truncated?)")

        let corrupt = try Self.copy(base, to: "corrupt", in: scratch)
        var state = try Data(contentsOf: URL(fileURLWithPath: corrupt + "/vcpu0.state"))
        state[200] ^= 0x40
        try state.write(to: URL(fileURLWithPath: corrupt + "/vcpu0.state"))
        try expectRefused(corrupt, "vcpu0.state is corrupt: checksum")

        let truncatedState = try Self.copy(base, to: "trunc-state", in: scratch)
        #expect(truncate(truncatedState + "/vcpu0.state", 100) == 0)
        try expectRefused(truncatedState, "vcpu0.state has 100 bytes; the manifest says")

        let cutManifest = try Self.copy(base, to: "cut-manifest", in: scratch)
        let text = try String(contentsOfFile: cutManifest + "/manifest", encoding: .utf8)
        try String(text.dropLast(4)).write(toFile: cutManifest + "/manifest", atomically: false, encoding: .utf8)
        try expectRefused(cutManifest, "no 'end' line (truncated?)")

        let future = try Self.copy(base, to: "future", in: scratch)
        try text.replacingOccurrences(of: "vmmkit-snapshot 2\n", with: "vmmkit-snapshot 3\n")
            .write(toFile: future + "/manifest", atomically: false, encoding: .utf8)
        try expectRefused(future, "format version 3; this VMMKit reads versions 1 to 2")
        // Digits only, as every other number in the manifest: "+2" was read as 2.
        let signed = try Self.copy(base, to: "signed", in: scratch)
        try text.replacingOccurrences(of: "vmmkit-snapshot 2\n", with: "vmmkit-snapshot +2\n")
            .write(toFile: signed + "/manifest", atomically: false, encoding: .utf8)
        try expectRefused(signed, "line 1: format version '+2' is not a number")

        let overflow = try Self.copy(base, to: "overflow", in: scratch)
        try text.replacingOccurrences(of: "region ram 0x0 0x800000 anonymous rw 0x0", with: "region ram 0x0 0x800000 anonymous rw 0xfffffffffffff000")
            .write(toFile: overflow + "/manifest", atomically: false, encoding: .utf8)
        try expectRefused(overflow, "region 'ram' at file offset 0xfffffffffffff000 + 0x800000 lies outside the 0x800000-byte memory file")

        let traversal = try Self.copy(base, to: "traversal", in: scratch)
        try text.replacingOccurrences(of: "state vm.state", with: "state ../vm.state")
            .write(toFile: traversal + "/manifest", atomically: false, encoding: .utf8)
        try expectRefused(traversal, "file name '../vm.state' is not a plain name")

        // A working set (read whole, each page looked up among the sorted regions) with
        // one page past the last region.
        let outside = try Self.copy(base, to: "outside", in: scratch)
        var ws = Data([3, 0, 0, 0])
        for gpa: UInt64 in [0x1000, 0x7f_f000, 0x80_0000] { withUnsafeBytes(of: gpa.littleEndian) { ws.append(contentsOf: $0) } }
        try ws.write(to: URL(fileURLWithPath: outside + "/ws"))
        let sum = ws.withUnsafeBytes(fnv1a64)
        try text.replacingOccurrences(of: "\nend\n", with: "\nworking-set ws \(ws.count) 0x\(String(sum, radix: 16))\nend\n")
            .write(toFile: outside + "/manifest", atomically: false, encoding: .utf8)
        try expectRefused(outside, "working-set page 0x800000 is not a page of a region")

        try expectRefused(scratch.sub("missing"), "file \(scratch.sub("missing"))/manifest is missing")

        // A FIFO where the manifest or the memory file should be: refused at once (open()
        // of a FIFO with no writer used to wait for one forever).
        for name in ["manifest", SnapshotManifest.memoryFileName] {
            let fifo = try Self.copy(base, to: "fifo-\(name)", in: scratch)
            try #require(unlink(fifo + "/" + name) == 0 && mkfifo(fifo + "/" + name, 0o600) == 0)
            let r = try RunnerResult.restore(fifo)
            #expect(r.status == 1)
            #expect(r.stderr.contains("\(fifo)/\(name) is not a regular file (a FIFO)"), "\(r.stderr)")
        }
    }

    @Test("a snapshot whose CPUID this host cannot offer is refused naming the leaf, register and bit")
    func cpuidMismatch() throws {
        let scratch = ScratchDir("cpuid")
        let g = try SnapshotGuest(vcpus: 1, released: false)
        for vcpu in g.guest.vm.vcpus { try vcpu.start(g.guest.dispatcher) }
        try #require(g.waitAtGate())
        for vcpu in g.guest.vm.vcpus { vcpu.pause() }
        var state = try VMState.capture(g.guest.vm, dispatcher: g.guest.dispatcher)
        let supported = try g.guest.kvm.supportedCPUID()
        let effective = try SnapshotImage.effectiveCPUID(g.guest.kvm)
        let hostLeaf7 = (supported + effective).filter { $0.function == 7 && $0.index == 0 }.reduce(0) { $0 | $1.ebx }
        let bit = try #require((0..<32).first { hostLeaf7 & (1 << $0) == 0 }, "the host offers every leaf 7 EBX feature")
        let i = try #require(state.vcpus[0].cpuid.firstIndex { $0.function == 7 && $0.index == 0 })
        state.vcpus[0].cpuid[i].ebx |= 1 << UInt32(bit)
        let dir = scratch.sub("snap")
        try SnapshotWriter.write(state, memory: g.guest.vm.memory, to: dir)
        g.guest.vm.close()
        try expectRefused(dir, "cannot be restored on this host: vCPU 0: CPUID leaf 0x7.0 EBX bit \(bit) is set in the snapshot but this host's KVM does not offer it")
    }

    @Test("a snapshot (the guest's memory and registers) is its owner's only: no group or other permission")
    func ownerOnly() throws {
        let scratch = ScratchDir("owner-only")
        let dir = scratch.sub("snap")
        let g = try SnapshotGuest(vcpus: 1, released: false)
        for vcpu in g.guest.vm.vcpus { try vcpu.start(g.guest.dispatcher) }
        try #require(g.waitAtGate())
        for vcpu in g.guest.vm.vcpus { vcpu.pause() }
        try VMSnapshot.save(g.guest.vm, dispatcher: g.guest.dispatcher, to: dir)
        func mode(_ path: String) -> mode_t { var st = stat(); return lstat(path, &st) == 0 ? st.st_mode & 0o777 : 0o777 }
        #expect(mode(dir) == 0o700, "\(dir): \(String(mode(dir), radix: 8))")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir)
        #expect(files.contains("memory.bin") && files.contains("manifest"), "\(files)")
        for file in files {
            #expect(mode(dir + "/" + file) == 0o600, "\(file): \(String(mode(dir + "/" + file), radix: 8))")
        }
    }

    @Test("saving never overwrites: an existing directory is refused and left alone")
    func noOverwrite() throws {
        let scratch = ScratchDir("overwrite")
        let dir = scratch.sub("snap")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false)
        let g = try SnapshotGuest(vcpus: 1, released: false)
        for vcpu in g.guest.vm.vcpus { try vcpu.start(g.guest.dispatcher) }
        try #require(g.waitAtGate())
        for vcpu in g.guest.vm.vcpus { vcpu.pause() }
        #expect(throws: SnapshotError.refused("\(dir) already exists; a snapshot never overwrites one")) {
            try VMSnapshot.save(g.guest.vm, dispatcher: g.guest.dispatcher, to: dir)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.path) == ["snap"])
    }
}

/// The state files' decoder on every truncation and on random damage: an error, never a crash.
@Suite("Snapshot state files against damage")
struct SnapshotDecodeTests {
    static func sampleState() -> VCPUState {
        var cpuid = CPUIDEntry()
        cpuid.function = 7
        return VCPUState(id: 0, registers: kvm_regs(), specialRegisters: kvm_sregs(), xsave: [UInt8](repeating: 1, count: 4096),
                         fpu: nil, xcrs: kvm_xcrs(), debugRegisters: kvm_debugregs(), msrs: [.init(index: 0x10, value: 42)],
                         lapic: kvm_lapic_state(), events: kvm_vcpu_events(), mpState: 0, cpuid: [cpuid], tscKHz: 1_000_000)
    }

    @Test("a vCPU state file decodes back to what was encoded")
    func roundTrip() throws {
        let bytes = Self.sampleState().encoded()
        let decoded = try VCPUState.decode(bytes, id: 0, path: "t")
        #expect(decoded.encoded() == bytes)
        #expect(decoded.msrs == [.init(index: 0x10, value: 42)] && decoded.tscKHz == 1_000_000)
    }

    @Test("every truncation and 2000 random byte flips give an error or a valid state, never a trap")
    func damage() throws {
        // Without the optional last record, every proper prefix lacks a required one.
        var state = Self.sampleState()
        state.tscKHz = nil
        let bytes = state.encoded()
        for length in 0..<bytes.count {
            #expect(throws: SnapshotError.self) { try VCPUState.decode(Array(bytes.prefix(length)), id: 0, path: "t") }
        }
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            var damaged = bytes
            damaged[Int.random(in: 0..<damaged.count, using: &rng)] ^= UInt8.random(in: 1...255, using: &rng)
            _ = try? VCPUState.decode(damaged, id: 0, path: "t")
        }
    }

    @Test("manifest numbers that overflow 64 bits are refused naming the line")
    func manifestOverflow() {
        let text = "vmmkit-snapshot 1\nvcpus 1\nregion ram 0x0 0x10000000000000000 anonymous rw 0x0\nend\n"
        #expect(throws: SnapshotError.invalid(path: "m", "line 3: region size '0x10000000000000000' is not a number that fits 64 bits")) {
            try SnapshotManifest.parse(Array(text.utf8), path: "m")
        }
        // Digits only, as the writer writes them: UInt64(_:radix:) alone read these as numbers.
        for (size, line) in [("0x+1000", 3), ("+4096", 3), ("0x-0", 3), ("0x", 3), ("4_096", 3)] {
            let signed = "vmmkit-snapshot 1\nvcpus 1\nregion ram 0x0 \(size) anonymous rw 0x0\nend\n"
            #expect(throws: SnapshotError.invalid(path: "m", "line \(line): region size '\(size)' is not a number that fits 64 bits")) {
                try SnapshotManifest.parse(Array(signed.utf8), path: "m")
            }
        }
        #expect(throws: SnapshotError.invalid(path: "m", "line 2: vCPU count '+1' is not a number that fits 64 bits")) {
            try SnapshotManifest.parse(Array("vmmkit-snapshot 1\nvcpus +1\nend\n".utf8), path: "m")
        }
        // Each region is a memory slot and a dispatch range at restore: at most 512.
        let regions = (0...512).map { "region r\($0) 0x\(String($0 * 0x1000, radix: 16)) 0x1000 anonymous rw 0x\(String($0 * 0x1000, radix: 16))\n" }
        #expect(throws: SnapshotError.invalid(path: "m", "line 515: more than 512 regions")) {
            try SnapshotManifest.parse(Array(("vmmkit-snapshot 1\nvcpus 1\n" + regions.joined() + "end\n").utf8), path: "m")
        }
    }

    static let header = "vmmkit-snapshot 1\nvcpus 1\nregion ram 0x0 0x1000 anonymous rw 0x0\nmemory memory.bin 0x1000\n"
        + "state vm.state 0 0x0\nstate vcpu0.state 8 0x0\n"

    @Test("a device listed twice, or with a file not its own, is refused naming the line")
    func manifestDevices() {
        let twice = Self.header + "device uart 1 device-uart.state 4 0x0\ndevice uart 1 device-uart.state 4 0x0\nend\n"
        #expect(throws: SnapshotError.invalid(path: "m", "line 8: device 'uart' appears twice")) {
            try SnapshotManifest.parse(Array(twice.utf8), path: "m")
        }
        let shared = Self.header + "device uart 1 vcpu0.state 8 0x0\nend\n"
        #expect(throws: SnapshotError.invalid(path: "m", "line 7: device 'uart' has file 'vcpu0.state'; its file is device-uart.state")) {
            try SnapshotManifest.parse(Array(shared.utf8), path: "m")
        }
        let fine = Self.header + "device uart 1 device-uart.state 4 0x0\nend\n"
        #expect((try? SnapshotManifest.parse(Array(fine.utf8), path: "m"))?.devices.map(\.name) == ["uart"])
    }

    @Test("the files a manifest lists hold at most 256 MiB together, each read whole at restore")
    func manifestTotal() {
        let big = 16 << 20
        let lines = (0..<16).map { "device d\($0) 1 device-d\($0).state \(big) 0x0\n" }.joined()
        // vcpu0.state's 8 bytes and 15 full devices fit; the 16th device passes the sum.
        #expect(throws: SnapshotError.invalid(path: "m", "line 22: the files listed so far hold \(16 * big + 8) bytes; a snapshot's state files hold at most \(256 << 20)")) {
            try SnapshotManifest.parse(Array((Self.header + lines + "end\n").utf8), path: "m")
        }
    }

    @Test("a save that restore would refuse writes nothing: a device name too long for its file, or no vCPU")
    func writerRefuses() {
        let scratch = ScratchDir("writer-refuses")
        let state = VMState(irqchip: nil, pit: nil, clock: nil, regions: [], vcpus: [])
        let long = String(repeating: "a", count: 52)
        #expect(throws: SnapshotError.refused("device name '\(long)' cannot be saved: letters, digits, '.', '_', '-', at most 51 bytes")) {
            try SnapshotWriter.write(state, memory: .detached(), devices: [DeviceState(name: long, version: 1, bytes: [])], to: scratch.sub("s"))
        }
        #expect(throws: SnapshotError.refused("it would not read back: line 2: vCPU count 0 (1...1024, once)")) {
            try SnapshotWriter.write(state, memory: .detached(), to: scratch.sub("s"))
        }
        #expect((try? FileManager.default.contentsOfDirectory(atPath: scratch.path)) == [])
        #expect(SnapshotManifest.isDeviceName(String(repeating: "a", count: 51)) && !SnapshotManifest.isDeviceName("plugin0.org.x+y"))
    }
}
