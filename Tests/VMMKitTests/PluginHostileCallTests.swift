import Foundation
import Testing

/// Plugins that call the host as the header allows but at the worst moment
/// (scripts/repro/*.c, compiled here): the host answers them and the run ends as it
/// should, where before it hung or crashed.
@Suite("plugins calling the host at the worst moment", .serialized, .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct PluginHostileCallTests {
    /// `scripts/repro/NAME.c` built into a plugin in a scratch directory.
    static func plugin(_ name: String) throws -> String {
        let dir = try VMMProcess.scratch("hostile-plugin", name)
        let out = dir + "/\(name).so"
        let source = VMMProcess.root.appendingPathComponent("scripts/repro/\(name).c").path
        let include = VMMProcess.root.appendingPathComponent("CShims/CVMMPlugin/include").path
        let cc = try VMMProcess.run(binary: "/usr/bin/cc", ["-O1", "-shared", "-fPIC", "-pthread", "-I", include, "-o", out, source])
        try #require(cc.status == 0, "cc: \(cc.stderr)")
        return out
    }

    @Test("a memory-fault plugin that reads the page it is filling gets -EAGAIN (11) on every thread; the demo runs to its end (it hung, and its exit with it)")
    func readsFetchedPage() throws {
        let plugin = try Self.plugin("reads_fetched_page")
        let r = try PluginListingTests.run(["run", VMMProcess.guest("demo.elf"), "--plugin", plugin, "--memory", "256M",
                                            "--max-seconds", "60", "--handler-budget", "5"], bound: 120)
        #expect(r.stdout.hasSuffix("demo: done, halting\n"), "\(r.stdout)")
        #expect(r.status == 0, "\(r.stderr.suffix(500))")
        let reads = r.stderr.split(separator: "\n").filter { $0.contains("read of the page being fetched: ") }
        #expect(!reads.isEmpty)
        #expect(reads.allSatisfy { $0.hasSuffix("read of the page being fetched: -11") }, "\(reads.prefix(3))")
    }

    @Test("an async-PF handler that raises again from inside each call is stopped 8 levels down with a message, handed back up intact (it overflowed the stack; the message read freed memory)")
    func raisesFromHandler() throws {
        let plugin = try Self.plugin("raises_from_handler")
        let plain = try VMMProcess.run(["run", VMMProcess.guest("hello64.elf")])
        let r = try PluginListingTests.run(["run", VMMProcess.guest("hello64.elf"), "--plugin", plugin], bound: 120)
        #expect(r.status == plain.status && r.stdout == plain.stdout, "status \(r.status): \(r.stderr.suffix(300))")
        let owner = "org.vmmkit.repro.raises-from-handler (\(plugin)): "
        #expect(r.stderr.contains("raise answered 2: " + String(repeating: owner, count: 8)
                                  + "async_pf raise: nested more than 8 deep (a handler raising events from inside one)\n"), "\(r.stderr.suffix(600))")
    }

    /// A flat 64-bit guest: reads the byte at 16 MiB (a page the plugin fills), writes it
    /// to debug-exit (`mov rax, 0x1000000; mov bl, [rax]; mov al, bl; out 0xf4, al; hlt`).
    static let touch16M: [UInt8] = [0x48, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0x48, 0x8b, 0x18, 0x88, 0xd8,
                                    0x66, 0xba, 0xf4, 0x00, 0xee, 0xf4]

    @Test("a memory-fault plugin that calls install_page from inside its fetch, for that page or the next, gets -EDEADLK (35) and the guest reads its byte (the first waited on itself until the budget blamed the plugin, the second overflowed the router's stack)")
    func installsFromFetch() throws {
        let plugin = try Self.plugin("installs_from_fetch")
        let guest = try VMMProcess.temp("touch16m.bin", Self.touch16M)
        for mode in ["same", "next"] {
            let r = try PluginListingTests.run(["run", guest, "--load-addr", "0x100000", "--plugin", plugin + "," + mode,
                                                "--handler-budget", "5"], bound: 120)
            #expect(r.status == (0x21 << 1) | 1, "\(mode): \(r.stderr.suffix(400))")
            #expect(r.stderr.contains("install_page from the fetch: -35\n"), "\(mode): \(r.stderr.suffix(400))")
        }
    }

    @Test("a memory-fault plugin reading, in its destroy, a page the guest never touched gets -EAGAIN (11), the one it touched its bytes (the read waited for ever: the demand pager had stopped)")
    func readsAfterRun() throws {
        let plugin = try Self.plugin("reads_after_run")
        let guest = try VMMProcess.temp("touch16m.bin", Self.touch16M)
        let r = try PluginListingTests.run(["run", guest, "--load-addr", "0x100000", "--plugin", plugin, "--handler-budget", "5"], bound: 120)
        #expect(r.status == (0x21 << 1) | 1, "\(r.stderr.suffix(400))")
        #expect(r.stderr.contains("after the run: the page touched 0 (0x21), one never touched -11\n"), "\(r.stderr.suffix(400))")
    }

    @Test("PAGE_MISSING raised from a thread that is not the vCPU's, outside its exit, is refused with a message (handlers changed the vCPU's state beside it: an NMI was lost)")
    func raisesMissingOffThread() throws {
        let plugin = try Self.plugin("raises_missing_off_thread")
        let plain = try VMMProcess.run(["run", VMMProcess.guest("hello64.elf")])
        let r = try PluginListingTests.run(["run", VMMProcess.guest("hello64.elf"), "--plugin", plugin], bound: 120)
        #expect(r.status == plain.status && r.stdout == plain.stdout, "status \(r.status): \(r.stderr.suffix(300))")
        #expect(r.stderr.contains("raise answered 2: async_pf raise: PAGE_MISSING for vCPU 0 comes from that vCPU's thread, during one of its exits\n"),
                "\(r.stderr.suffix(300))")
    }

    @Test("a plugin raising async-PF events from its own thread while its 2000 handlers are wired: every run ends as the guest ends (it aborted in 2 of 8)")
    func raisesDuringLoad() throws {
        let plugin = try Self.plugin("raises_during_load")
        let plain = try VMMProcess.run(["run", VMMProcess.guest("hello64.elf")])
        for _ in 0..<4 {
            let r = try PluginListingTests.run(["run", VMMProcess.guest("hello64.elf"), "--plugin", plugin + ",2000"], bound: 120)
            #expect(r.status == plain.status && r.signal == nil, "status \(r.status): \(r.stderr.suffix(400))")
            #expect(r.stdout == plain.stdout)
            #expect(r.stderr.contains("raised events"), "\(r.stderr.suffix(300))")
        }
    }
}
