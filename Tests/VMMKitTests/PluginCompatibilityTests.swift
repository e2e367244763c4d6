import Testing
@testable import VMMKit

/// Keep forever: a plugin compiled against the frozen v1.0 header
/// (Tests/PluginABI/v1.0) must load and work in the current host. If this fails, the
/// ABI broke.
@Suite("Plugin ABI compatibility", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct PluginCompatibilityTests {
    @Test("a v1.0 plugin loads and handles exits, using registers and guest memory")
    func v1_0() throws {
        let (guest, host) = try PluginFixtures.guest("plugin_compat")
        defer { host.close() }
        let loaded = try host.load(PluginFixtures.fixture("CompatV1_0"))
        #expect(loaded.id == "org.vmmkit.test.compat-v1-0")
        #expect(try guest.run() == .halted)
        #expect(try guest.vm.memory.read(TestGuest.scratch, as: UInt64.self) == 42)
        #expect(try guest.vm.memory.read(0x20100, as: UInt64.self) == 0x7777)
    }
}
