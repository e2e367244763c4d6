import Foundation
import Testing

/// What guards a `vmm run` — the vCPU seccomp allow-list, the plugin watchdog, the
/// `--max-seconds` exit — guards the machine `vmm restore` resumes too, and the watchdog
/// also sees a plugin's `init` and its state save and restore. Each run here is bounded
/// (`bound`): before, these restores and loads did not end.
@Suite("vmm run and vmm restore: plugin calls that never return, seccomp after a restore", .serialized,
       .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct LauncherRestoreGuardTests {
    static let guard_ = LauncherHandlerBudgetTests.fixture
    static let stateHangs = VMMProcess.root.appendingPathComponent(".build/plugins/fixtures/libSTATE_HANGS.so").path
    static let initHangs = PluginListingTests.hostile + "/libINIT_HANGS.so"
    static let cancelled = "plugin code runs in process and cannot be cancelled); it has not returned: exiting\n"

    /// A flat guest that waits 2^32 to 2^33 TSC cycles (past the snapshot at
    /// --max-seconds 0.3), then reads `port` and writes what it read to debug-exit: `rdtsc; mov ebx, edx; add ebx, 2; 1: rdtsc; cmp edx, ebx; jb 1b;
    /// mov dx, port; in al, dx; out 0xf4, al; hlt`.
    static func waitThenRead(_ port: UInt16) -> [UInt8] {
        [0x0f, 0x31, 0x89, 0xd3, 0x83, 0xc3, 0x02, 0x0f, 0x31, 0x39, 0xda, 0x72, 0xfa,
         0x66, 0xba, UInt8(port & 0xff), UInt8(port >> 8), 0xec, 0xe6, 0xf4, 0xf4]
    }

    /// `waitThenRead`'s loop alone: `bytes` put before it run before the snapshot, what
    /// follows it after the restore.
    static var waitPastSnapshot: [UInt8] { Array(waitThenRead(0).prefix(13)) }

    /// Runs the flat `guest` (at 1 MiB) until the snapshot at 0.3 s (status 22 expected),
    /// then resumes it in a new process, whose result it returns.
    static func restoredAfterSnapshot(_ name: String, _ guest: [UInt8]) throws -> VMMProcess.Result {
        let snap = try VMMProcess.scratch(name, "snap") + "/snap"
        let image = try VMMProcess.temp("\(name)-after-snapshot.bin", guest)
        let saved = try PluginListingTests.run(["run", image, "--load-addr", "0x100000", "--max-seconds", "0.3", "--snapshot-on-stop", snap],
                                               bound: 120)
        #expect(saved.status == 22, "stderr: \(saved.stderr)")
        return try PluginListingTests.run(["restore", snap], bound: 120)
    }

    func scratch(_ name: String) throws -> String { try VMMProcess.scratch("guard", name) }

    func run(_ args: [String]) throws -> VMMProcess.Result { try PluginListingTests.run(args, bound: 120) }

    /// Runs the guest reading `port` with `plugin` until the snapshot at 0.3 s; returns its directory.
    func snapshot(_ dir: String, port: UInt16, plugin: String) throws -> String {
        let guest = try VMMProcess.temp("guard-\(port).bin", Self.waitThenRead(port))
        let snap = dir + "/snap"
        let r = try run(["run", guest, "--load-addr", "0x100000", "--serial", "none", "--plugin", plugin,
                         "--max-seconds", "0.3", "--snapshot-on-stop", snap])
        #expect(r.status == 22, "stderr: \(r.stderr)")
        return snap
    }

    @Test("a plugin whose init never returns: status 8 once the handler budget is spent, naming the plugin and init")
    func initHangs() throws {
        let r = try run(["run", VMMProcess.guest("hello64.elf"), "--plugin", Self.initHangs, "--handler-budget", "0.3"])
        #expect(r.status == 8)
        #expect(r.stderr.hasPrefix("vmm: plugin org.vmmkit.test.hostile (\(Self.initHangs)) exceeded its 0.300 s budget in init (running for "), "stderr: \(r.stderr)")
        #expect(r.stderr.hasSuffix(Self.cancelled))
        #expect(r.stdout == "")
    }

    @Test("a plugin whose destroy never returns: the guest's own status is lost to status 8, naming the plugin and destroy")
    func destroyHangs() throws {
        let r = try run(["run", VMMProcess.guest("hello64.elf"), "--plugin", Self.stateHangs + ",destroy", "--handler-budget", "0.3"])
        #expect(r.stdout == "Hello from an ELF64 guest\n")
        #expect(r.status == 8)
        #expect(r.stderr.hasPrefix("vmm: plugin org.vmmkit.test.hostile (\(Self.stateHangs)) exceeded its 0.300 s budget in destroy (running for "), "stderr: \(r.stderr)")
        #expect(r.stderr.hasSuffix(Self.cancelled))
    }

    @Test("a plugin whose state save never returns: status 8 naming it, and no snapshot directory")
    func saveHangs() throws {
        let dir = try scratch("save")
        let guest = try VMMProcess.temp("guard-save.bin", Self.waitThenRead(0x532))
        let r = try run(["run", guest, "--load-addr", "0x100000", "--serial", "none", "--plugin", Self.stateHangs + ",save",
                         "--max-seconds", "0.3", "--snapshot-on-stop", dir + "/snap", "--handler-budget", "0.3"])
        #expect(r.status == 8)
        #expect(r.stderr.hasPrefix("vmm: plugin org.vmmkit.test.hostile (\(Self.stateHangs)) exceeded its 0.300 s budget in state save (running for "), "stderr: \(r.stderr)")
        #expect(r.stderr.hasSuffix(Self.cancelled))
        #expect(!FileManager.default.fileExists(atPath: dir + "/snap"))
    }

    @Test("a plugin's state save or restore failing with INT32_MIN is refused naming it, not a trap negating it")
    func stateFailsWithIntMin() throws {
        let dir = try scratch("intmin")
        let guest = try VMMProcess.temp("guard-intmin.bin", Self.waitThenRead(0x532))
        let save = try run(["run", guest, "--load-addr", "0x100000", "--serial", "none", "--plugin", Self.stateHangs + ",save-min",
                            "--max-seconds", "0.3", "--snapshot-on-stop", dir + "/none"])
        #expect(save.status == 24, "stderr: \(save.stderr)")
        #expect(save.stderr.contains("org.vmmkit.test.hostile"), "stderr: \(save.stderr)")
        #expect(save.stderr.contains("cannot save its state: status -2147483648"), "stderr: \(save.stderr)")
        let snap = try snapshot(dir, port: 0x532, plugin: Self.stateHangs + ",restore-min")
        let restore = try run(["restore", snap, "--trust-snapshot"])
        #expect(restore.status == 24, "stderr: \(restore.stderr)")
        #expect(restore.stderr.contains("refused its saved state: status -2147483648"), "stderr: \(restore.stderr)")
    }

    @Test("a plugin whose state restore never returns: vmm restore ends with status 8 naming it")
    func restoreHangs() throws {
        let snap = try snapshot(try scratch("restore"), port: 0x532, plugin: Self.stateHangs + ",restore")
        let r = try run(["restore", snap, "--trust-snapshot", "--handler-budget", "0.3"])
        #expect(r.status == 8)
        #expect(r.stderr.hasPrefix("vmm: plugin org.vmmkit.test.hostile (\(Self.stateHangs)) exceeded its 0.300 s budget in state restore (running for "), "stderr: \(r.stderr)")
        #expect(r.stderr.hasSuffix(Self.cancelled))
    }

    @Test("a restored vCPU runs under the seccomp allow-list: a handler's socket() is refused and reported; --no-seccomp and a declaration allow it")
    func seccomp() throws {
        let dir = try scratch("seccomp")
        let snap = try snapshot(dir, port: 0x532, plugin: Self.guard_)
        let on = try run(["restore", snap, "--trust-snapshot"])
        #expect(on.status == 1, "socket() refused: the guest writes 0")
        #expect(on.stderr == "vmm: seccomp: vCPU 0 made system call 41 (socket), outside its allow-list: refused with EPERM (see Docs/Seccomp.md)\n")
        let off = try run(["restore", snap, "--trust-snapshot", "--no-seccomp"])
        #expect(off.status == 3 && off.stderr == "", "stderr: \(off.stderr)")
        let declaredSnap = try snapshot(try scratch("seccomp-declared"), port: 0x532, plugin: Self.guard_ + ",seccomp_allow=1")
        let declared = try run(["restore", declaredSnap, "--trust-snapshot"])
        #expect(declared.status == 3 && declared.stderr == "", "stderr: \(declared.stderr)")
    }

    @Test("a restored vCPU in a handler that never returns: status 8 by the budget, 16 by --max-seconds, each naming the handler")
    func handlerHangs() throws {
        let snap = try snapshot(try scratch("hang"), port: 0x531, plugin: Self.guard_)
        let budget = try run(["restore", snap, "--trust-snapshot", "--handler-budget", "0.3"])
        #expect(budget.status == 8)
        #expect(budget.stderr.hasPrefix("vmm: vCPU 0: handler failed: plugin handler org.vmmkit.test.guard 'hang' (\(Self.guard_)) exceeded its 0.300 s budget on vCPU 0 handling pio in port 0x531 size 1"), "stderr: \(budget.stderr)")
        #expect(budget.stderr.hasSuffix(Self.cancelled))
        // Past the guest's wait (at most 2^33 TSC cycles), inside the budget.
        let timed = try run(["restore", snap, "--trust-snapshot", "--max-seconds", "8", "--handler-budget", "60"])
        #expect(timed.status == 16)
        #expect(timed.stderr == "vmm: stopped after --max-seconds 8; still running: vCPU 0 in plugin handler org.vmmkit.test.guard 'hang' (\(Self.guard_)) handling pio in port 0x531 size 1 (plugin code cannot be cancelled): exiting\n")
    }
}
