import Foundation
import Testing

@Suite("vmm launcher: plugin handlers that do not return", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct LauncherHandlerBudgetTests {
    static let fixture = VMMProcess.root.appendingPathComponent(".build/plugins/fixtures/libGuard.so").path

    @Test("--handler-budget: a handler that never returns ends the run with status 8 naming plugin, handler, vCPU and exit")
    func budget() throws {
        let guest = try VMMProcess.temp("hang.bin", [0x66, 0xba, 0x31, 0x05, 0xec, 0xf4]) // in from 0x531; hlt
        let r = try VMMProcess.run(["run", guest, "--load-addr", "0x100000", "--plugin", Self.fixture, "--handler-budget", "0.2"])
        #expect(r.status == 8)
        #expect(r.stderr.hasPrefix("vmm: vCPU 0: handler failed: plugin handler org.vmmkit.test.guard 'hang' (\(Self.fixture)) exceeded its 0.200 s budget on vCPU 0 handling pio in port 0x531 size 1"))
        #expect(r.stderr.hasSuffix("cannot be cancelled); it has not returned: exiting\n"))
    }

    @Test("--max-seconds with a handler that never returns: status 16, naming the handler it waited for")
    func maxSeconds() throws {
        let guest = try VMMProcess.temp("hang2.bin", [0x66, 0xba, 0x31, 0x05, 0xec, 0xf4])
        let r = try VMMProcess.run(["run", guest, "--load-addr", "0x100000", "--plugin", Self.fixture, "--max-seconds", "0.3"])
        #expect(r.status == 16)
        #expect(r.stderr == "vmm: stopped after --max-seconds 0.3; still running: vCPU 0 in plugin handler org.vmmkit.test.guard 'hang' (\(Self.fixture)) handling pio in port 0x531 size 1 (plugin code cannot be cancelled): exiting\n")
    }

    @Test("a handler calling the host in a loop (each call runs nested handlers) is still one call: reported, naming both")
    func nestedCallsInALoop() throws {
        let guest = try VMMProcess.temp("raise.bin", [0x66, 0xba, 0x38, 0x05, 0xec, 0xf4]) // in from 0x538; hlt
        // --max-seconds only bounds the test: without the watchdog this ran until killed.
        let r = try VMMProcess.run(["run", guest, "--load-addr", "0x100000", "--plugin", Self.fixture, "--handler-budget", "0.2", "--max-seconds", "5"])
        #expect(r.status == 8)
        let outer = "vmm: vCPU 0: handler failed: plugin handler org.vmmkit.test.guard 'raise' (\(Self.fixture)) exceeded its 0.200 s budget on vCPU 0 handling pio in port 0x538 size 1"
        #expect(r.stderr.hasPrefix(outer), "stderr: \(r.stderr)")
        // The watchdog's poll finds the handler either inside one of its nested calls
        // (then named too) or between two of them.
        let rest = r.stderr.dropFirst(outer.count)
        let nested = rest.hasPrefix(", now in org.vmmkit.async-pf 'async-pf' (") && rest.contains(" handling async-PF event kind 3 at 0x0 (running for ")
        #expect(nested || rest.hasPrefix(" (running for "), "stderr: \(r.stderr)")
    }

    @Test("a typed hypercall that never returns is watched like a handler: status 8, or 16 naming it")
    func typedHypercallHangs() throws {
        let guest = try VMMProcess.temp("hc-hang.bin", [0xb8, 0x11, 0x6a, 0, 0, 0xe7, 0xe4, 0xf4]) // mov eax, 0x6a11; out 0xe4, eax; hlt
        let name = "org.vmmkit.test.guard 'hypercall 27153' (\(Self.fixture))"
        let b = try VMMProcess.run(["run", guest, "--load-addr", "0x100000", "--plugin", Self.fixture, "--handler-budget", "0.2", "--max-seconds", "5"])
        #expect(b.status == 8)
        #expect(b.stderr.hasPrefix("vmm: vCPU 0: handler failed: plugin handler \(name) exceeded its 0.200 s budget on vCPU 0 handling typed hypercall 27153 (running for "), "stderr: \(b.stderr)")
        let t = try VMMProcess.run(["run", guest, "--load-addr", "0x100000", "--plugin", Self.fixture, "--max-seconds", "0.3"])
        #expect(t.status == 16)
        #expect(t.stderr == "vmm: stopped after --max-seconds 0.3; still running: vCPU 0 in plugin handler \(name) handling typed hypercall 27153 (plugin code cannot be cancelled): exiting\n")
    }

    @Test("a bad budget: status 2 for the flag, 4 for the config key")
    func badBudget() throws {
        let guest = try VMMProcess.temp("hang3.bin", [0xf4])
        let flag = try VMMProcess.run(["run", guest, "--load-addr", "0x100000", "--handler-budget", "0"])
        #expect(flag.status == 2)
        #expect(flag.stderr == "vmm: --handler-budget must be a number of seconds from 0.000001 to 86400, not 0\n")
        let config = try VMMProcess.temp("budget.json", Array("{\"handlerBudget\": 1e300}".utf8))
        let c = try VMMProcess.run(["run", guest, "--load-addr", "0x100000", "--config", config])
        #expect(c.status == 4)
        #expect(c.stderr == "vmm: \(config): 'handlerBudget' must be a number of seconds from 0.000001 to 86400, not 1e300\n")
    }
}
