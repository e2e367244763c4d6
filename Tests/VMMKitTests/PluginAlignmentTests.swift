import Foundation
import Testing
@testable import VMMKit

/// Structs a plugin hands the host at an address their type cannot have (a field of a
/// packed struct, a function's name): refused with a line saying so, never read. The
/// entry read in place trapped `vmm run` ("load from misaligned raw pointer", SIGILL),
/// while `vmm plugins` listed it as valid and `--probe` reported a crash.
@Suite("Plugin structs at misaligned addresses", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct PluginAlignmentTests {
    static let misaligned = PluginFixtures.fixture("MISALIGNED")
    static let why = "its vmm_plugin_entry is at an address that is not a multiple of 8, as a vmm_plugin_entry_t's "
        + "must be (a plugin defines `const vmm_plugin_entry_t vmm_plugin_entry`, not a function or a field of a packed struct)"

    @Test("a vmm_plugin_entry one byte into a packed struct: the same refusal loaded and read from the file")
    func entryInProcess() throws {
        let (_, host) = try PluginFixtures.guest("hlt")
        defer { host.close() }
        let loaded = pluginError { () throws(PluginError) in try host.load(Self.misaligned) }
        #expect(loaded?.description == "plugin \(Self.misaligned): \(Self.why)")
        #expect(host.plugins.isEmpty)
        let read = pluginError { () throws(PluginError) in _ = try PluginDescriptor.read(Self.misaligned) }
        #expect(read == loaded)
    }

    @Test("vmm run, vmm plugins and vmm plugins --probe refuse it alike: status 8 and one line")
    func entryCommands() throws {
        let run = try VMMProcess.run(["run", VMMProcess.guest("hello64.elf"), "--plugin", Self.misaligned])
        #expect(run.status == 8)
        #expect(run.stdout == "")
        #expect(run.stderr == "vmm: plugin \(Self.misaligned): \(Self.why)\n")
        let refused = "refused  \(Self.misaligned): plugin \(Self.misaligned): \(Self.why)\n"
        for args in [["plugins", Self.misaligned], ["plugins", "--probe", Self.misaligned]] {
            let r = try VMMProcess.run(args)
            #expect(r.status == 8, "\(args)")
            #expect(r.stdout == refused, "\(args)")
            #expect(r.stderr == "", "\(args)")
        }
    }

    @Test("a handler descriptor one byte past an 8-byte boundary is refused by register_handler (status 8)")
    func handlerDescriptor() throws {
        let fixture = PluginFixtures.fixture("RANGES")
        let r = try VMMProcess.run(["run", VMMProcess.guest("hello64.elf"), "--plugin", "\(fixture),misaligned"])
        #expect(r.status == 8)
        let prefix = "vmm: plugin 'org.vmmkit.test.fixture' (\(fixture)): init failed: 'org.vmmkit.test.fixture' (\(fixture)): "
            + "handler descriptor at 0x"
        #expect(r.stderr.hasPrefix(prefix), "\(r.stderr)")
        #expect(r.stderr.hasSuffix(" is not aligned as a vmm_handler_desc_t must be (a multiple of 8)\n"), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1)
    }

    @Test("a state table (org.vmmkit.plugin.state/1) at an odd address: the save is refused naming the plugin")
    func stateTable() throws {
        let (_, host) = try PluginFixtures.guest("hlt")
        defer { host.close() }
        try host.load(PluginFixtures.fixture("STATE_HANGS"), config: "misaligned")
        let error = pluginError { () throws(PluginError) in _ = try host.saveStateBlobs() }
        let text = try #require(error?.description)
        #expect(text.hasPrefix("plugin org.vmmkit.test.hostile: its org.vmmkit.plugin.state/1 table at 0x"), "\(text)")
        #expect(text.hasSuffix(" is not aligned as a vmm_plugin_state_t must be (a multiple of 8)"), "\(text)")
    }
}
