import Foundation
import Testing

/// QEMU's `-debugcon` as `vmm run --debugcon`: port 0xe9 prints and reads back 0xe9
/// (Examples/GuestImages/qemu/debugcon.S, written as for QEMU), and is part of the
/// machine a snapshot keeps.
@Suite("vmm --debugcon (port 0xe9) on real KVM", .serialized, .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct DebugConsoleTests {
    static let guest = VMMProcess.guest("debugcon.elf")
    static let printed = "debugcon: a byte at a time\ndebugcon: rep outsb\ndebugcon: a word writes its low byte: !\n"
    static let found: Int32 = (0x11 << 1) | 1
    /// The flat guest of `LauncherRestoreGuardTests` reading port 0xe9 after the snapshot
    /// and ending with what it read: 0xe9 with the device, 0xff without.
    static func readsAfterSnapshot() throws -> String { try VMMProcess.temp("debugcon-read.bin", LauncherRestoreGuardTests.waitThenRead(0xe9)) }
    static func exitStatus(_ value: Int32) -> Int32 { (value << 1 | 1) & 0xff }

    func scratch(_ name: String) throws -> String { try VMMProcess.scratch("debugcon", name) }

    func run(_ args: [String]) throws -> VMMProcess.Result { try PluginListingTests.run(args, bound: 120) }

    @Test("without --debugcon port 0xe9 is unassigned, as under QEMU without -debugcon: the guest reads 0xff and finds none")
    func absentByDefault() throws {
        let r = try run(["run", Self.guest])
        #expect(r.stdout == "no debug console\n")
        #expect(r.stderr == "")
        #expect(r.status == (0x12 << 1) | 1)
    }

    @Test("--debugcon stdio: bytes, rep outsb and a word's low byte reach stdout before COM1's verdict; reads give 0xe9")
    func toStdout() throws {
        let r = try run(["run", Self.guest, "--debugcon", "stdio"])
        #expect(r.stdout == Self.printed + "debug console found\n")
        #expect(r.stderr == "")
        #expect(r.status == Self.found)
    }

    @Test("--debugcon file:PATH and the config file's 'debugcon' key: the file holds exactly what the guest wrote")
    func toFile() throws {
        let dir = try scratch("file")
        let r = try run(["run", Self.guest, "--debugcon", "file:\(dir)/out.txt"])
        #expect(r.stdout == "debug console found\n")
        #expect(r.status == Self.found)
        #expect(try String(contentsOfFile: dir + "/out.txt", encoding: .utf8) == Self.printed)
        let config = dir + "/vm.json"
        try Data("{\"debugcon\": \"file:\(dir)/config.txt\"}".utf8).write(to: URL(fileURLWithPath: config))
        let c = try run(["run", Self.guest, "--config", config, "--no-default-plugins", "--plugin", "DebugExit"])
        #expect(c.status == Self.found, "stderr: \(c.stderr)")
        #expect(try String(contentsOfFile: dir + "/config.txt", encoding: .utf8) == Self.printed)
    }

    @Test("bad --debugcon input: one line and status 2 (4 in a config file), or the output stops once with a line; the guest runs on")
    func badInput() throws {
        let bad = try run(["run", Self.guest, "--debugcon", "tty"])
        #expect(bad.stderr == "vmm: --debugcon must be stdio, none or file:PATH, not 'tty'\n")
        #expect(bad.status == 2)
        let taken = try run(["run", Self.guest, "--debugcon", "stdio", "--plugin", "DebugExit,port=0xe9"])
        #expect(taken.stderr.hasPrefix("vmm: --debugcon: port 0xe9 is already taken by org.vmmkit.debug-exit"), "stderr: \(taken.stderr)")
        #expect(taken.stdout == "")
        #expect(taken.status == 2)
        try Self.expectRefusals(key: "debugcon", guest: Self.guest, device: "debug console (port 0xe9)", dir: try scratch("bad"),
                                stdout: "debug console found\n", status: Self.found)
    }

    /// For an output flag `--KEY` and its config key: a bad config value refused in one
    /// line (status 4), and a target that cannot be written (/dev/full) stopping
    /// `device`'s output once with a line while the guest runs on to `stdout` and `status`.
    static func expectRefusals(key: String, guest: String, device: String, dir: String, stdout: String, status: Int32) throws {
        let config = dir + "/vm.json"
        try Data("{\"\(key)\": \"com1\"}".utf8).write(to: URL(fileURLWithPath: config))
        let c = try PluginListingTests.run(["run", guest, "--config", config], bound: 120)
        #expect(c.stderr == "vmm: \(config): '\(key)' must be \"stdio\", \"none\" or \"file:PATH\", not 'com1'\n")
        #expect(c.status == 4)
        let full = try PluginListingTests.run(["run", guest, "--\(key)", "file:/dev/full"], bound: 120)
        #expect(full.stderr == "vmm: \(device): output stopped, the guest's later output is lost: writing to /dev/full failed: No space left on device (errno 28)\n")
        #expect(full.stdout == stdout)
        #expect(full.status == status)
    }

    @Test("a snapshot keeps the device: restore rebuilds it (the guest reads 0xe9), refuses its file without --trust-snapshot, and never adds or removes it")
    func snapshotRestore() throws {
        let dir = try scratch("snap")
        let guest = try Self.readsAfterSnapshot()
        let snap = dir + "/with"
        let saved = try run(["run", guest, "--load-addr", "0x100000", "--debugcon", "file:\(dir)/saved.txt",
                             "--max-seconds", "0.3", "--snapshot-on-stop", snap])
        #expect(saved.status == 22, "stderr: \(saved.stderr)")
        let refused = try run(["restore", snap])
        #expect(refused.stderr == "vmm: cannot restore \(snap): its launcher state names the debug console file 'file:\(dir)/saved.txt'; restore loads or opens what a snapshot names only with --trust-snapshot (a snapshot from elsewhere could name any library or file)\n")
        #expect(refused.status == 24)
        let removed = try run(["restore", snap, "--debugcon", "none"])
        #expect(removed.stderr == "vmm: --debugcon none: the machine in \(snap) has a debug console (port 0xe9); give stdio or file:PATH to move its output\n")
        #expect(removed.status == 2)
        let moved = try run(["restore", snap, "--debugcon", "stdio"])
        #expect(moved.stderr == "")
        #expect(moved.status == Self.exitStatus(0xe9))

        let without = dir + "/without"
        let plain = try run(["run", guest, "--load-addr", "0x100000", "--max-seconds", "0.3", "--snapshot-on-stop", without])
        #expect(plain.status == 22, "stderr: \(plain.stderr)")
        let added = try run(["restore", without, "--debugcon", "stdio"])
        #expect(added.stderr == "vmm: --debugcon: the machine in \(without) has no debug console (port 0xe9); a restore cannot add one\n")
        #expect(added.status == 2)
        let restored = try run(["restore", without])
        #expect(restored.status == Self.exitStatus(0xff), "stderr: \(restored.stderr)")
    }
}
