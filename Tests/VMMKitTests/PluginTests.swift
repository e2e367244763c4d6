import Glibc
import Testing
@testable import VMMKit

/// Both delivered plugins, loaded from their built shared libraries, handling real
/// exits of real guests.
@Suite("Plugins on real KVM", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct PluginTests {
    @Test("the C debug-exit plugin (a plain cc -shared build) reads 0 and stops the VM with the guest's code")
    func debugExitPIO() throws {
        let (guest, host) = try PluginFixtures.guest("plugin_debug_exit")
        defer { host.close() }
        let loaded = try host.load("DebugExit")
        #expect(loaded.id == "org.vmmkit.debug-exit")
        #expect(loaded.path == PluginFixtures.plugins + "/libDebugExit.so")
        #expect(try guest.run() == .guestExit(code: 42))
        #expect(try guest.vm.memory.read(TestGuest.scratch, as: UInt64.self) == 0x12_3400)
    }

    @Test("debug-exit in MMIO mode, configured with key=value")
    func debugExitMMIO() throws {
        let (guest, host) = try PluginFixtures.guest("plugin_debug_exit_mmio")
        defer { host.close() }
        try host.load("DebugExit", config: "mmio=0xd0002000")
        #expect(try guest.run() == .guestExit(code: 7))
    }

    @Test("debug-exit refuses a bad config, naming the key")
    func debugExitBadConfig() throws {
        let (_, host) = try PluginFixtures.guest("hlt")
        let error = pluginError { () throws(PluginError) in try host.load("DebugExit", config: "prot=0xf4") }
        #expect(error?.description == "plugin 'org.vmmkit.debug-exit' (\(PluginFixtures.plugins)/libDebugExit.so): "
            + "init failed: debug-exit: unknown key 'prot' (known keys: port, mmio)")
    }

    @Test("the Swift scratch device: values written through ports come back through MMIO and back")
    func scratchDevice() throws {
        let (guest, host) = try PluginFixtures.guest("plugin_scratch")
        defer { host.close() }
        let loaded = try host.load("ScratchDevice")
        #expect(loaded.id == "org.vmmkit.scratch-device")
        #expect(try guest.run() == .halted)
        let m = guest.vm.memory
        #expect(try m.read(TestGuest.scratch, as: UInt64.self) == 0x4433_2211)
        #expect(try m.read(TestGuest.scratch + 8, as: UInt64.self) == 0x55_1122_3344)
        #expect(try m.read(TestGuest.scratch + 0x10, as: UInt64.self) == 0x55)
    }

    @Test("one plugin serves two VMs: a second instance, its own registrations")
    func samePluginTwice() throws {
        for code in [42, 42] {
            let (guest, host) = try PluginFixtures.guest("plugin_debug_exit")
            try host.load("DebugExit")
            try host.load("ScratchDevice", config: "port=0x600,mmio=0")
            #expect(host.plugins.map(\.id) == ["org.vmmkit.debug-exit", "org.vmmkit.scratch-device"])
            #expect(try guest.run() == .guestExit(code: Int32(code)))
            host.close()
        }
    }

    @Test("a Swift handler that throws stops the vCPU with the plugin's message and path; no fd leaks")
    func swiftHandlerFails() throws {
        let before = openFDs()
        do {
            let (guest, host) = try PluginFixtures.guest("plugin_scratch_fault")
            try host.load("ScratchDevice")
            let path = PluginSearchPath.packageRoot! + "/.build/debug/libScratchDevice.so"
            #expect(try guest.run() == .handlerFailed(
                "org.vmmkit.scratch-device 'scratch-pio' (\(path)): guest wrote 0xbad to the fault port"))
            host.close()
            guest.vm.close()
        }
        #expect(fdsOpened(since: before) == [])
    }

    @Test("a C handler returning VMM_FAIL stops the vCPU with its message")
    func cHandlerFails() throws {
        let (guest, host) = try PluginFixtures.guest("plugin_c_fail")
        defer { host.close() }
        try host.load(PluginFixtures.fixture("C_FAIL"))
        #expect(try guest.run() == .handlerFailed(
            "org.vmmkit.test.fixture 'fail-port' (\(PluginFixtures.fixture("C_FAIL"))): c-fixture: refused value 5"))
    }

    @Test("the search path: VMM_PLUGIN_PATH is searched, and a missing name lists every place tried")
    func searchPath() throws {
        #expect(PluginFixtures.built)
        setenv("VMM_PLUGIN_PATH", PluginFixtures.fixtures, 1)
        defer { unsetenv("VMM_PLUGIN_PATH") }
        let path = PluginSearchPath.standard()
        #expect(try path.resolve("Hypercalls") == PluginFixtures.fixture("Hypercalls"))
        #expect(try path.resolve("DebugExit") == PluginFixtures.plugins + "/libDebugExit.so")
        let explicit = PluginSearchPath(["/nonexistent"])
        #expect(throws: PluginError(plugin: "'Nope'",
            "not found; searched /nonexistent for libNope.so, Nope.so and Nope")) { try explicit.resolve("Nope") }
    }

    @Test("a Swift plugin's thrown init error refuses the load with its message")
    func swiftInitError() throws {
        let (_, host) = try PluginFixtures.guest("hlt")
        let path = PluginSearchPath.packageRoot! + "/.build/debug/libScratchDevice.so"
        let error = pluginError { () throws(PluginError) in try host.load("ScratchDevice", config: "colour=red") }
        #expect(error?.description == "plugin 'org.vmmkit.scratch-device' (\(path)): init failed: "
            + "org.vmmkit.scratch-device: unknown key 'colour' (known keys: port, mmio)")
    }

    @Test("the Swift plugin shares the host's one dynamic Swift runtime (no second, static copy)")
    func oneSwiftRuntime() throws {
        let (_, host) = try PluginFixtures.guest("hlt")
        defer { host.close() }
        try host.load("ScratchDevice")
        guard let maps = fopen("/proc/self/maps", "r") else { Issue.record("no /proc/self/maps"); return }
        defer { fclose(maps) }
        var runtimes = Set<String>(), line = [CChar](repeating: 0, count: 4096)
        while fgets(&line, Int32(line.count), maps) != nil {
            let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if let path = text.split(separator: " ").last, path.contains("libswiftCore") { runtimes.insert(String(path)) }
        }
        #expect(runtimes.count == 1)
        // The runtime the plugin binds to is that shared library, not a copy inside it.
        let plugin = dlopen(PluginSearchPath.packageRoot! + "/.build/debug/libScratchDevice.so", RTLD_NOW | RTLD_NOLOAD)
        // (dlsym on a library handle searches the library itself first.)
        let process = dlopen(nil, RTLD_NOW)
        #expect(plugin != nil && process != nil)
        #expect(dlsym(plugin, "swift_retain") == dlsym(process, "swift_retain"))
    }
}
