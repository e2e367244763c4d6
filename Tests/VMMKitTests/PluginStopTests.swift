import Foundation
import Testing
@testable import VMMKit

/// A plugin's request_stop as a user sees it: its reason on one line under the plugin's
/// id whatever the --log-level (it was shown only at info), a vcpu_id that names no
/// vCPU refused with a line (it was ignored, and any id below -1 stopped the whole VM),
/// and a request from init held until init succeeds.
@Suite("Plugin stop requests", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct PluginStopTests {
    static let stopper = PluginFixtures.fixture("Stopper")

    /// hello64 with the stopper on port 0xf4 (the guest's last write) instead of DebugExit.
    func run(_ config: String, defaults: Bool = false) throws -> VMMProcess.Result {
        #expect(PluginFixtures.built)
        return try VMMProcess.run(["run", VMMProcess.guest("hello64.elf")] + (defaults ? [] : ["--no-default-plugins"])
            + ["--plugin", "\(Self.stopper),\(config)"])
    }

    @Test("a stop from a handler, with a reason: one line naming the plugin and its reason, at the default log level")
    func reasonShown() throws {
        let r = try run("code=3,reason=disk on fire")
        #expect(r.status == 7) // (3 << 1) | 1
        #expect(r.stderr == "vmm: plugin org.vmmkit.test.stopper asked to stop the VM (code 3): disk on fire\n")
        let one = try run("vcpu=0,code=5,reason=vCPU zero is done")
        #expect(one.status == 11)
        #expect(one.stderr == "vmm: plugin org.vmmkit.test.stopper asked to stop vCPU 0 (code 5): vCPU zero is done\n")
        // A reason holding a newline and a terminal escape stays on its line, escaped.
        let hostile = try run("reason=fire\nvmm: forged\u{1b}[2J")
        #expect(hostile.status == 7)
        #expect(hostile.stderr == #"vmm: plugin org.vmmkit.test.stopper asked to stop the VM (code 3): fire\nvmm: forged\u{1b}[2J"# + "\n",
                "\(hostile.stderr.debugDescription)")
    }

    @Test("a stop without a reason (as DebugExit's for the guest's own exit) prints nothing")
    func noReason() throws {
        let r = try run("code=3")
        #expect(r.status == 7)
        #expect(r.stderr == "")
    }

    @Test("a vcpu_id other than -1 or an existing vCPU's is refused with an error line; nothing stops", arguments: [-7, -2, 1, Int(Int32.max)])
    func unknownVCPU(id: Int) throws {
        let r = try run("vcpu=\(id),reason=should not stop")
        // The guest goes on to its HLT: the machine halted for good, status 0.
        #expect(r.status == 0)
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 1, "\(r.stderr)")
        #expect(lines.first?.hasSuffix(" error vmm: [org.vmmkit.test.stopper] request_stop refused: the VM has no vCPU \(id) "
            + "(-1 stops the whole VM; its vCPUs are 0); nothing was stopped") == true, "\(r.stderr)")
    }

    @Test("from init: the VM stops before any guest code runs, with the line; a failed init's request is dropped")
    func fromInit() throws {
        let r = try run("when=init,code=4,reason=no disk", defaults: true)
        #expect(r.status == 9)
        #expect(r.stdout == "") // the guest never printed its line
        #expect(r.stderr == "vmm: plugin org.vmmkit.test.stopper asked to stop the VM (code 4): no disk\n")
        let failed = try run("when=init,fail,reason=no disk", defaults: true)
        #expect(failed.status == 8)
        #expect(failed.stderr == "vmm: plugin 'org.vmmkit.test.stopper' (\(Self.stopper)): init failed: stopper: failing after its request_stop, as configured\n")
    }

    @Test("embedded: PluginHost.stopHandler receives the request; one from a failed init never reaches the VM")
    func embedded() throws {
        let requests = Recorder<PluginStopRequest>()
        do {
            let (guest, host) = try PluginFixtures.guest("hlt")
            defer { host.close() }
            host.stopHandler = { requests.append($0) }
            try host.load(Self.stopper, config: "when=init,code=4,reason=no disk")
            #expect(requests.all == [PluginStopRequest(plugin: "org.vmmkit.test.stopper", vcpu: nil, code: 4, reason: "no disk")])
            #expect(try guest.run() == .guestExit(code: 4))
        }
        let (guest, host) = try PluginFixtures.guest("hlt")
        defer { host.close() }
        host.stopHandler = { requests.append($0) }
        #expect(pluginError { () throws(PluginError) in try host.load(Self.stopper, config: "when=init,fail,reason=no disk") } != nil)
        #expect(requests.all.count == 1)
        #expect(guest.vm.stopReason == nil)
        #expect(try guest.run() == .halted)
    }
}
