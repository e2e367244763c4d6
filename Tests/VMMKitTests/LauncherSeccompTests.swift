import Foundation
import Testing

@Suite("vmm launcher: seccomp on vCPU threads", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct LauncherSeccompTests {
    /// in from 0x532 (the handler's socket() result: 0 refused, 1 allowed); out %al,$0xf4
    static let code: [UInt8] = [0x66, 0xba, 0x32, 0x05, 0xec, 0xe6, 0xf4, 0xf4]

    @Test("a handler refused 40 times: the first 16 refusals are reported a line each, then one line says the rest are counted")
    func refusalsReportedThenCounted() throws {
        // mov ecx, 40; 1: mov dx, 0x532; in al, dx; dec ecx; jnz 1b; out 0xf4, al; hlt
        let loop: [UInt8] = [0xb9, 40, 0, 0, 0, 0x66, 0xba, 0x32, 0x05, 0xec, 0xff, 0xc9, 0x75, 0xf7, 0xe6, 0xf4, 0xf4]
        let guest = try VMMProcess.temp("sock40.bin", loop)
        let r = try VMMProcess.run(["run", guest, "--load-addr", "0x100000", "--plugin", LauncherHandlerBudgetTests.fixture])
        #expect(r.status == 1)
        let line = "vmm: seccomp: vCPU 0 made system call 41 (socket), outside its allow-list: refused with EPERM (see Docs/Seccomp.md)\n"
        #expect(r.stderr == String(repeating: line, count: 16)
            + "vmm: seccomp: more system calls refused: not reported one by one after 16 (Seccomp.refusedCount counts them all)\n")
    }

    @Test("on by default: a plugin handler's socket() is refused and reported; --no-seccomp and a declaration allow it")
    func launcher() throws {
        let fixture = LauncherHandlerBudgetTests.fixture
        let guest = try VMMProcess.temp("sock.bin", Self.code)
        let on = try VMMProcess.run(["run", guest, "--load-addr", "0x100000", "--plugin", fixture])
        #expect(on.status == 1)
        #expect(on.stderr == "vmm: seccomp: vCPU 0 made system call 41 (socket), outside its allow-list: refused with EPERM (see Docs/Seccomp.md)\n")
        let off = try VMMProcess.run(["run", guest, "--load-addr", "0x100000", "--plugin", fixture, "--no-seccomp"])
        #expect(off.status == 3 && off.stderr == "")
        let declared = try VMMProcess.run(["run", guest, "--load-addr", "0x100000", "--plugin", "\(fixture),seccomp_allow=1"])
        #expect(declared.status == 3 && declared.stderr == "")
        let config = try VMMProcess.temp("noseccomp.json", Array("{\"noSeccomp\": true}".utf8))
        let c = try VMMProcess.run(["run", guest, "--load-addr", "0x100000", "--plugin", fixture, "--config", config])
        #expect(c.status == 3)
    }

    /// The Swift runtime's crash reporter cannot start on a filtered thread (it spawns a
    /// process): before the fatal-signal guard, vmm died of SIGSYS here, or, with the
    /// UART holding a terminal, spun forever in its restore handler (rt_sigaction
    /// refused) until the handler budget ended it with status 8.
    @Test("a plugin handler's divide by zero on a filtered vCPU thread ends vmm by SIGFPE, with one line naming signal and vCPU")
    func faultOnFilteredThread() throws {
        // mov $0x531,%dx; xor %eax,%eax; out %al,(%dx)  (the DIV0 fixture divides by the byte); hlt
        let guest = try VMMProcess.temp("div0.bin", [0x66, 0xba, 0x31, 0x05, 0x31, 0xc0, 0xee, 0xf4])
        var noCore = rlimit(), saved = rlimit()
        getrlimit(Int32(RLIMIT_CORE.rawValue), &saved)
        noCore.rlim_max = saved.rlim_max
        setrlimit(Int32(RLIMIT_CORE.rawValue), &noCore)
        defer { setrlimit(Int32(RLIMIT_CORE.rawValue), &saved) }
        let r = try VMMProcess.run(["run", guest, "--load-addr", "0x100000", "--plugin", PluginFixtures.fixture("DIV0")])
        #expect(r.signal == SIGFPE)
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 1)
        #expect(lines.first?.hasPrefix("vmm: vCPU 0: fatal signal SIGFPE (integer divide by zero) at pc 0x") == true)
        #expect(lines.first?.hasSuffix(" on its thread: the process ends by it (no crash report under seccomp; see Docs/Seccomp.md)") == true)
    }
}
