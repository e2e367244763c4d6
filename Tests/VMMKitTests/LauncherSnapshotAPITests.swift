import Foundation
import Testing

/// Issue 15, item 5 through the launcher: a guest run with `vmm run --api-sock`, paused
/// mid-run with `vmm ctl pause`, saved with `vmm ctl snapshot`, stopped, then resumed by
/// `vmm restore` (lazy) and `vmm restore --eager` in new processes: the console output
/// before the pause plus each restore's equals one uninterrupted run's, with its status.
@Suite("vmm ctl snapshot and vmm restore on real KVM (async-PF and 2-vCPU guests)", .serialized,
       .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct LauncherSnapshotAPITests {
    func read(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }

    func scratch(_ name: String) throws -> String { try VMMProcess.scratch("snapapi", name) }

    func contents(_ dir: String) throws -> [String: Data] {
        var all: [String: Data] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: dir) {
            all[name] = try Data(contentsOf: URL(fileURLWithPath: dir + "/" + name))
        }
        return all
    }

    /// The whole round trip; `midRun` says when the console shows the guest is far
    /// enough to pause (polled; the guest then works on for a second or more). Returns
    /// the uninterrupted run's console output.
    @discardableResult
    /// `metrics` gets `vmm ctl metrics` at the pause; with `lazyStats` the lazy restore
    /// runs with --stats and its stderr goes there.
    func roundTrip(_ name: String, _ run: [String], status: Int32, metrics: ((String) -> Void)? = nil,
                   lazyStats: ((String) -> Void)? = nil, midRun: (String) -> Bool) throws -> String {
        let dir = try scratch(name)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Bounded as the restores are: a guest that never ends fails here, by name.
        let full = try VMMProcess.run(run + ["--serial", "file:\(dir)/full.txt", "--max-seconds", "300"])
        #expect(full.status == status, "uninterrupted run: \(full.stderr)")
        let expected = read(dir + "/full.txt")

        let socket = dir + "/api.sock", snap = dir + "/snap", out = dir + "/before.txt"
        let vmm = Spawned(VMMProcess.binary, run + ["--serial", "file:\(out)", "--api-sock", socket, "--max-seconds", "600"])
        defer { vmm.kill() }
        try #require(eventually(tries: 60_000) { midRun(read(out)) }, "the guest never printed its mid-run marker: \(read(out))")
        let pause = try ControlAPITests.ctl([socket, "pause"])
        #expect(pause.status == 0, "\(pause.stdout)\(pause.stderr)")
        if let metrics { metrics(try ControlAPITests.ctl([socket, "metrics"]).stdout) }
        let before = read(out)
        #expect(try ControlAPITests.ctl([socket, "info"]).stdout.hasPrefix(#"{"state": "Paused""#))
        let saved = try ControlAPITests.ctl([socket, "snapshot", snap])
        #expect(saved.status == 0, "\(saved.stdout)\(saved.stderr)")
        #expect(try ControlAPITests.ctl([socket, "stop"]).status == 0)
        let stopped = vmm.wait()
        #expect(stopped.status == 0 && stopped.stderr == "", "\(stopped.stderr)")
        #expect(before.count < expected.count && expected.hasPrefix(before), "paused mid-run: \(before.count) of \(expected.count) bytes printed")
        let files = try contents(snap)

        for mode in [[], ["--eager"]] {
            let log = dir + "/restored\(mode.joined()).txt"
            let stats = mode.isEmpty && lazyStats != nil
            // Bounded: a restored guest that waits forever (a lost "ready") fails here, by name.
            // --trust-snapshot: the async-PF guest's snapshot names MemoryFault's memory file.
            let r = try VMMProcess.run(["restore", snap, "--trust-snapshot", "--serial", "file:\(log)", "--max-seconds", "300"] + mode + (stats ? ["--stats"] : []))
            let why = r.status == status ? "" : try diagnose(snap, mode, name)
            #expect(r.status == status, "restore \(mode): \(r.stderr)\(why)")
            if stats { lazyStats?(r.stderr) } else { #expect(r.stderr == "") }
            #expect(before + read(log) == expected, "restore \(mode): the console continues the uninterrupted run")
        }
        #expect(try contents(snap) == files, "a restore changes nothing on disk")
        return expected
    }

    /// For a restore that failed (a CI run cannot be repeated at will): keeps the snapshot
    /// and restores it once more with the plugins' end-of-run state and the statistics.
    func diagnose(_ snap: String, _ mode: [String], _ name: String) throws -> String {
        let kept = NSTemporaryDirectory() + "vmm-failed-restore-\(getpid())-\(name)"
        try? FileManager.default.removeItem(atPath: kept)
        try? FileManager.default.copyItem(atPath: snap, toPath: kept)
        let again = try VMMProcess.run(["restore", snap, "--trust-snapshot", "--serial", "none", "--max-seconds", "30", "--stats", "--log-level", "info"] + mode)
        return "\n(snapshot kept in \(kept); restored again: status \(again.status)\n\(again.stderr))"
    }

    /// `--irqchip none`: with the in-kernel LAPIC, KVM resolves a ring-3 fault on a
    /// userfaultfd page itself (its own async page fault: a kernel worker waits on the
    /// page while the vCPU halts in the kernel), so the AsyncPF plugin never sees it;
    /// without it the faults reach the plugin and the guest gets "not present"/"ready".
    @Test("the two-task async-PF guest (pages demand-paged by MemoryFault, user-space async page faults): paused, snapshotted, restored lazily and eagerly")
    func asyncPFGuest() throws {
        let run = ["run", VMMProcess.guest("apfsnap.elf"), "--irqchip", "none",
                   "--plugin", "MemoryFault,snapshot=\(VMMProcess.guest("demo-data.mem")),base=0x200000"]
        let full = try roundTrip("apf", run, status: 0) { $0 == "apf-snap: start\n" }
        // The pages' checksum (as the demo computes it), B's fixed work, async PF on.
        #expect(full == "apf-snap: start\napf-snap: 16 pages, checksum 0x97C69ECD96644D26, task B counted to 0x0000000040000000, async page faults 1\napf-snap: done\n")
    }

    /// The default, in-kernel irqchip: KVM's own async-PF worker takes the ring-3 faults
    /// and halts the vCPU; the demand pager hands them to that vCPU, so the AsyncPF plugin
    /// sends the guest "not present" and another task runs (AsyncPFIRQChipTests).
    @Test("the two-task async-PF guest with the in-kernel irqchip: async PFs in the run and the lazy restore, the same console output")
    func asyncPFGuestKernelIRQChip() throws {
        let run = ["run", VMMProcess.guest("apfsnap.elf"),
                   "--plugin", "MemoryFault,snapshot=\(VMMProcess.guest("demo-data.mem")),base=0x200000"]
        var before = -1, after = -1, handedOver = -1
        let full = try roundTrip("apfk", run, status: 0, metrics: { json in
            // "not_present_injected": N at the pause (0 if it came before task A's first fault).
            before = Self.counter(json, "not_present_injected")
        }, lazyStats: { stderr in
            let line = stderr.split(separator: "\n").first { $0.hasPrefix("async page faults: ") } ?? ""
            let numbers = line.split(separator: " ").compactMap { Int($0.trimmingCharacters(in: .punctuationCharacters)) }
            if numbers.count == 3 { (after, handedOver) = (numbers[0], numbers[2]) }
        }) { $0 == "apf-snap: start\n" }
        #expect(full == "apf-snap: start\napf-snap: 16 pages, checksum 0x97C69ECD96644D26, task B counted to 0x0000000040000000, async page faults 1\napf-snap: done\n")
        #expect(before >= 0 && after >= 0 && before + after >= 1, "not present: \(before) before the pause, \(after) in the lazy restore")
        #expect(handedOver >= after, "\(handedOver) of \(after) from KVM's worker")
    }

    static func counter(_ json: String, _ key: String) -> Int {
        guard let range = json.range(of: "\"\(key)\": ") else { return -1 }
        return Int(json[range.upperBound...].prefix { $0.isNumber }) ?? -1
    }

    @Test("a 2-vCPU guest (in-kernel irqchip, the AP serving the BSP): paused, snapshotted, restored lazily and eagerly")
    func twoVCPUGuest() throws {
        let run = ["run", VMMProcess.guest("smpsnap.elf"), "--vcpus", "2"]
        try roundTrip("smp", run, status: 0x20 << 1 | 1) { $0.filter { $0 == "\n" }.count >= 64 }
    }

    @Test("the same guest on 255 vCPUs, QEMU pc's most: 255 vCPU states saved and put back, lazily and eagerly")
    func mostVCPUs() throws {
        let run = ["run", VMMProcess.guest("smpsnap.elf"), "--vcpus", "255"]
        try roundTrip("smp255", run, status: 0x20 << 1 | 1) { $0.filter { $0 == "\n" }.count >= 64 }
    }

    @Test("vmm restore --api-sock: the restored VM answers the API, is paused, snapshotted again and stopped; that snapshot restores too")
    func restoreServesTheAPI() throws {
        let dir = try scratch("restore-api")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let image = try VMMProcess.temp("forever.bin", [0xeb, 0xfe]) // jmp .
        defer { unlink(image) }
        func pauseSnapshotStop(_ args: [String], _ socket: String, _ snap: String) throws {
            let vmm = Spawned(VMMProcess.binary, args + ["--api-sock", socket])
            defer { vmm.kill() }
            try #require(eventually(tries: 60_000) { (try? ControlAPITests.ctl([socket, "info"]).status) == 0 }, "no API on \(socket)")
            #expect(try ControlAPITests.ctl([socket, "info"]).stdout.hasPrefix(#"{"state": "Running""#))
            #expect(try ControlAPITests.ctl([socket, "pause"]).status == 0)
            let saved = try ControlAPITests.ctl([socket, "snapshot", snap])
            #expect(saved.status == 0, "\(saved.stdout)\(saved.stderr)")
            #expect(try ControlAPITests.ctl([socket, "stop"]).status == 0)
            let stopped = vmm.wait()
            #expect(stopped.status == 0 && stopped.stderr == "", "\(stopped.stderr)")
        }
        try pauseSnapshotStop(["run", image, "--load-addr", "0x100000"], dir + "/run.sock", dir + "/first")
        try pauseSnapshotStop(["restore", dir + "/first"], dir + "/restore.sock", dir + "/second")
        // The guest never ends: the second snapshot runs until --max-seconds (status 16).
        let again = try VMMProcess.run(["restore", dir + "/second", "--max-seconds", "0.2"])
        #expect(again.status == 16, "\(again.stderr)")
    }
}
