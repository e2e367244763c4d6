import Foundation
import Testing

/// `vmm run` loads the AsyncPF plugin by default: a guest reads CPUID 0x40000001 and
/// reports ASYNC_PF (bit 4) as bit 0, ASYNC_PF_INT (bit 14) as bit 1 and
/// ASYNC_PF_VMEXIT (bit 10) as bit 2 of its debug-exit code (status = code << 1 | 1).
@Suite("vmm launcher with the AsyncPF default plugin", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct LauncherAsyncPFTests {
    static let cpuidProbe: [UInt8] = [
        0xb8, 0x01, 0x00, 0x00, 0x40, // mov eax, 0x40000001
        0x31, 0xc9,                   // xor ecx, ecx
        0x0f, 0xa2,                   // cpuid
        0x89, 0xc3, 0x89, 0xc1,       // mov ebx, eax; mov ecx, eax
        0xc1, 0xe8, 0x04, 0x83, 0xe0, 0x01, // shr eax, 4; and eax, 1
        0xc1, 0xeb, 0x0d, 0x83, 0xe3, 0x02, // shr ebx, 13; and ebx, 2
        0x09, 0xd8,                   // or eax, ebx
        0xc1, 0xe9, 0x08, 0x83, 0xe1, 0x04, // shr ecx, 8; and ecx, 4
        0x09, 0xc8,                   // or eax, ecx
        0x66, 0xba, 0xf4, 0x00, 0xee, // mov dx, 0xf4; out dx, al
        0xf4,                         // hlt
    ]

    @Test("By default the guest sees ASYNC_PF and ASYNC_PF_INT, never ASYNC_PF_VMEXIT, and runs as before")
    func defaultPluginAdvertises() throws {
        let probe = try VMMProcess.temp("cpuid-probe.bin", Self.cpuidProbe)
        let r = try VMMProcess.run(["run", probe, "--load-addr", "0x100000", "--log-level", "info"])
        #expect(r.status == 3 << 1 | 1, "\(r.stderr)")
        #expect(r.stderr.contains("loaded default plugin org.vmmkit.async-pf 1.0.0"))
    }

    @Test("--plugin AsyncPF,advertise=0 replaces the default and withdraws all three bits")
    func pluginCanWithdraw() throws {
        let probe = try VMMProcess.temp("cpuid-probe.bin", Self.cpuidProbe)
        let r = try VMMProcess.run(["run", probe, "--load-addr", "0x100000", "--log-level", "info", "--plugin", "AsyncPF,advertise=0"])
        #expect(r.status == 1, "\(r.stderr)")
        #expect(!r.stderr.contains("loaded default plugin org.vmmkit.async-pf"), "one instance, the user's")
    }

    @Test("A bad AsyncPF config key stops vmm run with a message naming it")
    func badKey() throws {
        let probe = try VMMProcess.temp("cpuid-probe.bin", Self.cpuidProbe)
        let r = try VMMProcess.run(["run", probe, "--load-addr", "0x100000", "--plugin", "AsyncPF,conflict=3"])
        #expect(r.status != 0 && r.stderr.contains("org.vmmkit.async-pf: unknown key 'conflict'"), "\(r.stderr)")
    }
}
