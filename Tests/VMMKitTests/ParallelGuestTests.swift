import Foundation
import Testing

/// QEMU's `pc` has LPT1 at 0x378 (IRQ 7, the null backend under `-nographic`); a guest
/// written for QEMU (Examples/GuestImages/qemu/lpt.S) probes it and prints through it
/// with the strobe handshake, as under QEMU; `--parallel` sends what it prints to stdout
/// or a file, as QEMU's `-parallel stdio` and `file:`.
@Suite("the parallel port LPT1 on real KVM", .serialized, .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct ParallelGuestTests {
    static let guest = VMMProcess.guest("lpt.elf")
    static let registers = "registers: data FF status D9 control CC\n" + "latch 55\n"
    static let verdict = "printed 03 bytes, interrupts 03 status D9\n" + "init: status D8\n"
    static let status: Int32 = (0x25 << 1) | 1

    /// A flat guest that waits past the snapshot at 0.3 s (`LauncherRestoreGuardTests`'s
    /// loop), prints 'R' through LPT1 (latch, strobe up and down), and exits with the
    /// status it then reads (0x59: the printer busy with it).
    static let printsAfterSnapshot: [UInt8] = LauncherRestoreGuardTests.waitPastSnapshot + [
        0x66, 0xba, 0x78, 0x03, 0xb0, 0x52, 0xee, // mov $0x378, %dx; mov $'R', %al; out %al, %dx
        0x66, 0xba, 0x7a, 0x03, 0xb0, 0x0d, 0xee, // mov $0x37a, %dx; mov $0x0d, %al; out (strobe up)
        0xb0, 0x0c, 0xee,                         // mov $0x0c, %al; out (strobe down)
        0x66, 0xba, 0x79, 0x03, 0xec,             // mov $0x379, %dx; in %dx, %al
        0xe6, 0xf4, 0xf4, 0xf4,                   // out %al, $0xf4 (debug exit); hlt
    ]

    func run(_ args: [String]) throws -> VMMProcess.Result { try PluginListingTests.run(args, bound: 120) }

    func scratch(_ name: String) throws -> String { try VMMProcess.scratch("parallel", name) }

    @Test("the guest finds LPT1 as QEMU resets it, reads its latch back, prints three bytes with an IRQ 7 for each strobe's fall and sees INIT reset the status, every port a device's (--strict-io); the bytes go nowhere by default")
    func probeAndPrint() throws {
        for extra in [[], ["--strict-io"], ["--parallel", "none"]] {
            let r = try run(["run", Self.guest] + extra)
            #expect(r.stdout == Self.registers + Self.verdict)
            #expect(r.status == Self.status, "stderr: \(r.stderr)")
        }
    }

    @Test("--parallel stdio, file:PATH and the config file's 'parallel' key: exactly the bytes the guest printed, in order with COM1's output")
    func output() throws {
        let out = try run(["run", Self.guest, "--parallel", "stdio"])
        #expect(out.stdout == Self.registers + "hi\n" + Self.verdict)
        #expect(out.status == Self.status, "stderr: \(out.stderr)")
        let dir = try scratch("output")
        let file = try run(["run", Self.guest, "--parallel", "file:\(dir)/lpt.txt"])
        #expect(file.stdout == Self.registers + Self.verdict)
        #expect(try String(contentsOfFile: dir + "/lpt.txt", encoding: .utf8) == "hi\n")
        let config = dir + "/vm.json"
        try Data("{\"parallel\": \"file:\(dir)/config.txt\"}".utf8).write(to: URL(fileURLWithPath: config))
        let configured = try run(["run", Self.guest, "--config", config])
        #expect(configured.status == Self.status, "stderr: \(configured.stderr)")
        #expect(try String(contentsOfFile: dir + "/config.txt", encoding: .utf8) == "hi\n")
    }

    @Test("bad --parallel input: one line and status 2 (4 in a config file); a plugin on LPT1's ports named; a failing file stops the output once with a line, the guest runs on")
    func badInput() throws {
        let bad = try run(["run", Self.guest, "--parallel", "lpt"])
        #expect(bad.stderr == "vmm: --parallel must be stdio, none or file:PATH, not 'lpt'\n")
        #expect(bad.status == 2)
        let taken = try run(["run", Self.guest, "--parallel", "stdio", "--plugin", "DebugExit,port=0x37a"])
        #expect(taken.stderr.hasPrefix("vmm: --parallel: port 0x37a is already taken by org.vmmkit.debug-exit"), "stderr: \(taken.stderr)")
        #expect(taken.status == 2)
        try DebugConsoleTests.expectRefusals(key: "parallel", guest: Self.guest, device: "parallel port (LPT1)", dir: try scratch("bad"),
                                             stdout: Self.registers + Self.verdict, status: Self.status)
    }

    @Test("a snapshot keeps where the bytes go: restore refuses its file without --trust-snapshot, --parallel moves them (none drops them), and the guest prints after the restore")
    func snapshotRestore() throws {
        let dir = try scratch("snap")
        let guest = try VMMProcess.temp("lpt-after-snapshot.bin", Self.printsAfterSnapshot)
        let snap = dir + "/snap"
        let saved = try run(["run", guest, "--load-addr", "0x100000", "--parallel", "file:\(dir)/saved.txt",
                             "--max-seconds", "0.3", "--snapshot-on-stop", snap])
        #expect(saved.status == 22, "stderr: \(saved.stderr)")
        #expect(try String(contentsOfFile: dir + "/saved.txt", encoding: .utf8) == "")
        let refused = try run(["restore", snap])
        #expect(refused.stderr == "vmm: cannot restore \(snap): its launcher state names the parallel port file 'file:\(dir)/saved.txt'; restore loads or opens what a snapshot names only with --trust-snapshot (a snapshot from elsewhere could name any library or file)\n")
        #expect(refused.status == 24)
        let busy = DebugConsoleTests.exitStatus(0x59)
        let moved = try run(["restore", snap, "--parallel", "stdio"])
        #expect(moved.stdout == "R" && moved.stderr == "")
        #expect(moved.status == busy)
        let dropped = try run(["restore", snap, "--parallel", "none"])
        #expect(dropped.stdout == "" && dropped.status == busy, "stderr: \(dropped.stderr)")
        let trusted = try run(["restore", snap, "--trust-snapshot"])
        #expect(trusted.status == busy, "stderr: \(trusted.stderr)")
        #expect(try String(contentsOfFile: dir + "/saved.txt", encoding: .utf8) == "R")
    }
}
