import Foundation
import Testing

/// QEMU's pvpanic (`--pvpanic`, port 0x505) as a kernel's panic path uses it
/// (Examples/GuestImages/qemu/pvpanic.S): the events it recognises; a panic ends the run
/// with status 26 and one line; a crash kernel's report is a line and the guest goes on;
/// a shutdown report is a power-off; bits it does not know, and a machine without it,
/// change nothing.
@Suite("pvpanic on real KVM", .serialized, .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct PVPanicTests {
    static let guest = VMMProcess.guest("pvpanic.elf")
    static let goesOn: Int32 = (0x27 << 1) | 1

    func run(_ args: [String]) throws -> VMMProcess.Result { try PluginListingTests.run(args, bound: 60) }

    @Test("a panic ends the run with status 26 and one line naming the vCPU and the value; a crash kernel's report lets the guest go on; a shutdown report is status 0; unknown bits change nothing")
    func events() throws {
        let base = ["run", Self.guest, "--pvpanic", "--max-seconds", "30"]
        let panic = try run(base)
        #expect(panic.stdout == "pvpanic: events 00000007\npvpanic: panic\n")
        #expect(panic.stderr == "vmm: the guest panicked (vCPU 0 wrote 0x1 to the pvpanic port 0x505)\n")
        #expect(panic.status == 26)
        let dump = try run(base + ["--append", "dump"])
        #expect(dump.stdout == "pvpanic: events 00000007\npvpanic: a crash kernel takes over\npvpanic: still running\npvpanic: panic\n")
        #expect(dump.stderr == "vmm: the guest panicked and a crash kernel of its own handles it (vCPU 0 wrote 0x2 to the pvpanic port 0x505); the run goes on\n"
            + "vmm: the guest panicked (vCPU 0 wrote 0x1 to the pvpanic port 0x505)\n")
        #expect(dump.status == 26)
        let down = try run(base + ["--append", "down", "--vcpus", "2"])
        #expect(down.stdout == "pvpanic: events 00000007\n" && down.stderr == "" && down.status == 0, "\(down.stderr)")
        let none = try run(base + ["--append", "none"])
        #expect(none.stdout == "pvpanic: events 00000007\npvpanic: still running\n" && none.stderr == "" && none.status == Self.goesOn)
    }

    @Test("the config key gives the device; without it port 0x505 is unassigned (all-ones, writes dropped); a plugin claiming the port has it")
    func presence() throws {
        let dir = try VMMProcess.scratch("pvpanic", "config")
        let config = dir + "/vm.json"
        try Data(#"{"image": "\#(Self.guest)", "pvpanic": true, "maxSeconds": 30}"#.utf8).write(to: URL(fileURLWithPath: config))
        let configured = try run(["run", "--config", config])
        #expect(configured.stdout == "pvpanic: events 00000007\npvpanic: panic\n" && configured.status == 26)
        let without = try run(["run", Self.guest, "--max-seconds", "30"])
        #expect(without.stdout == "pvpanic: events 000000FF\npvpanic: panic\npvpanic: still running\n")
        #expect(without.stderr == "" && without.status == Self.goesOn)
        // The scratch device (ports 0x4f8-0x508): its register 13 reads 0 and keeps the write.
        let claimed = try run(["run", Self.guest, "--pvpanic", "--plugin", "ScratchDevice,port=0x4f8", "--max-seconds", "30"])
        #expect(claimed.stdout == "pvpanic: events 00000000\npvpanic: panic\npvpanic: still running\n" && claimed.status == Self.goesOn, "\(claimed.stderr)")
    }
}
