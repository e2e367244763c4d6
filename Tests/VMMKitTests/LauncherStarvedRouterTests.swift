import Foundation
import Testing

/// CI25: a lazily restored async-PF guest hung when its demand pager's fault router was
/// starved (a loaded machine): an expired post withdrew a later one, whose page the vCPU
/// thread then waited on for ever (RELIABILITY.md, Determinism). Here the router is
/// starved on purpose: `scripts/repro/slow_router.c`, preloaded into `vmm restore`, makes
/// it sleep 15 ms before each poll. Before the fix 8 of 20 such restores hung.
@Suite("vmm restore with a starved fault router (CI25)", .serialized, .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct LauncherStarvedRouterTests {
    func read(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }

    @Test("the two-task async-PF guest (--irqchip none) saved after its start line and restored lazily 6 times, the router sleeping 15 ms before each poll: every restore finishes as an uninterrupted run does")
    func starvedRouter() throws {
        let dir = NSTemporaryDirectory() + "vmm-starved-router-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let shim = dir + "/slow_router.so"
        let source = VMMProcess.root.appendingPathComponent("scripts/repro/slow_router.c").path
        let cc = try VMMProcess.run(binary: "/usr/bin/cc", ["-O2", "-shared", "-fPIC", "-o", shim, source, "-ldl"])
        try #require(cc.status == 0, "cc: \(cc.stderr)")

        let run = ["run", VMMProcess.guest("apfsnap.elf"), "--irqchip", "none",
                   "--plugin", "MemoryFault,snapshot=\(VMMProcess.guest("demo-data.mem")),base=0x200000"]
        let full = try VMMProcess.run(run + ["--serial", "file:\(dir)/full.txt"])
        #expect(full.status == 0, "uninterrupted run: \(full.stderr)")
        let expected = read(dir + "/full.txt")
        let socket = dir + "/api.sock", snap = dir + "/snap", out = dir + "/before.txt"
        let vmm = Spawned(VMMProcess.binary, run + ["--serial", "file:\(out)", "--api-sock", socket, "--max-seconds", "600"])
        defer { vmm.kill() }
        try #require(eventually(tries: 60_000) { read(out) == "apf-snap: start\n" }, "no start line: \(read(out))")
        #expect(try ControlAPITests.ctl([socket, "pause"]).status == 0)
        let before = read(out)
        #expect(try ControlAPITests.ctl([socket, "snapshot", snap]).status == 0)
        #expect(try ControlAPITests.ctl([socket, "stop"]).status == 0)
        #expect(vmm.wait().status == 0)

        for i in 0..<6 {
            let log = dir + "/restored\(i).txt"
            // Bounded: a restore that hangs fails here, by its --max-seconds status (16).
            // --trust-snapshot: the snapshot names MemoryFault's memory file (its config).
            let r = try VMMProcess.run(["restore", snap, "--trust-snapshot", "--serial", "file:\(log)", "--max-seconds", "60"], environment: ["LD_PRELOAD": shim])
            #expect(r.status == 0, "restore \(i): \(r.stderr)")
            #expect(before + read(log) == expected, "restore \(i): the console continues the uninterrupted run")
        }
    }
}
