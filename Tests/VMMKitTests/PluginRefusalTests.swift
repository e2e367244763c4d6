import Glibc
import Testing
@testable import VMMKit

/// Every way a plugin is refused, each with the exact message a user would read.
@Suite("Plugin refusals", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct PluginRefusalTests {
    let fixture = PluginFixtures.fixture

    func refusal(_ plugin: String, config: String = "") throws -> String {
        let (_, host) = try PluginFixtures.guest("hlt")
        defer { host.close() }
        let error = pluginError { () throws(PluginError) in try host.load(plugin, config: config) }
        #expect(host.plugins.isEmpty)
        return error?.description ?? "(loaded)"
    }

    @Test("a path that does not exist")
    func missingPath() throws {
        #expect(try refusal("/nonexistent/libNope.so")
            == "plugin /nonexistent/libNope.so: cannot open: No such file or directory (errno 2)")
    }

    @Test("a file that is not a shared library")
    func notALibrary() throws {
        let path = PluginFixtures.fixtures + "/not_a_library.so"
        let message = try refusal(path)
        #expect(message.hasPrefix("plugin \(path): not a loadable shared library: \(path): "))
        #expect(message.hasSuffix("invalid ELF header") || message.hasSuffix("file too short"))
    }

    @Test("a library without the vmm_plugin_entry symbol")
    func noEntry() throws {
        #expect(try refusal(fixture("NO_ENTRY")) == "plugin \(fixture("NO_ENTRY")): no 'vmm_plugin_entry' symbol: "
            + "not a VMMKit plugin (a plugin defines `const vmm_plugin_entry_t vmm_plugin_entry` from vmm_plugin.h)")
    }

    @Test("another ABI major")
    func otherMajor() throws {
        #expect(try refusal(fixture("MAJOR2")) == "plugin \(fixture("MAJOR2")): built for plugin ABI 2.0, but this "
            + "host implements ABI 1.2: a different major version is incompatible; rebuild the plugin against this host's vmm_plugin.h")
    }

    @Test("a newer minor than the host's, refused by name")
    func newerMinor() throws {
        #expect(try refusal(fixture("MINOR_NEWER")) == "plugin 'org.vmmkit.test.fixture' (\(fixture("MINOR_NEWER"))): "
            + "built for plugin ABI 1.99, newer than this host's ABI 1.2: update the host, or rebuild the plugin against vmm_plugin.h 1.2")
    }

    @Test("init fails with the plugin's message")
    func initFails() throws {
        #expect(try refusal(fixture("INIT_FAILS")) == "plugin 'org.vmmkit.test.fixture' (\(fixture("INIT_FAILS"))): "
            + "init failed: fixture: the device refuses to start (config missing 'disk')")
    }

    @Test("a bad libffi signature is refused at registration, saying where")
    func badSignature() throws {
        #expect(try refusal(fixture("BAD_HYPERCALL")) == "plugin 'org.vmmkit.test.fixture' (\(fixture("BAD_HYPERCALL"))): "
            + "init failed: fixture: org.vmmkit.test.fixture (\(fixture("BAD_HYPERCALL"))): hypercall 200: bad hypercall "
            + "signature 'u64(u64, float)': unknown type 'float' for argument 2; expected RET(ARG,...) with RET void, "
            + "i8..i64, u8..u64 or ptr and 0 to 6 ARGs of i8..i64, u8..u64 or ptr")
    }

    @Test("an overlapping exclusive range names both owners, and the refused plugin leaves nothing behind")
    func overlap() throws {
        let (guest, host) = try PluginFixtures.guest("plugin_debug_exit")
        defer { host.close() }
        try host.load("ScratchDevice", config: "port=0xf0,mmio=0")
        let scratch = PluginSearchPath.packageRoot! + "/.build/debug/libScratchDevice.so"
        let debugExit = PluginFixtures.plugins + "/libDebugExit.so"
        let error = pluginError { () throws(PluginError) in try host.load("DebugExit") }
        #expect(error?.description == "plugin 'org.vmmkit.debug-exit' (\(debugExit)): init failed: debug-exit: "
            + "org.vmmkit.debug-exit 'debug-exit' (\(debugExit)): port range [0xf4..<0xf5] overlaps [0xf0..<0x101] "
            + "owned by org.vmmkit.scratch-device 'scratch-pio' (\(scratch)) (an exclusive range cannot be shared)")
        #expect(host.plugins.map(\.id) == ["org.vmmkit.scratch-device"])
        // Port 0xf4 is the scratch device's register 4: the guest's write lands there
        // and the guest halts; nothing of the refused plugin handles it.
        #expect(try guest.run() == .halted)
    }
}

@Suite("Plugin loading after start", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct PluginLateLoadTests {
    @Test("loading once the vCPUs run is refused, and the running guest is unaffected")
    func afterStart() throws {
        let (guest, host) = try PluginFixtures.guest("plugin_debug_exit")
        defer { host.close() }
        try host.load("DebugExit")
        try guest.vcpu.start(guest.dispatcher)
        let error = pluginError { () throws(PluginError) in try host.load(PluginFixtures.fixture("Hypercalls")) }
        #expect(error?.description == "plugin \(PluginFixtures.fixture("Hypercalls")): the VM's vCPUs have already "
            + "started: load plugins before vm.run or vcpu.start")
        #expect(guest.vcpu.join() == .guestExit(code: 42))
    }
}
