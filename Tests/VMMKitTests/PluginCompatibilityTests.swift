import Glibc
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

/// Keep forever: a memory-fault plugin compiled against the frozen v1.1 header
/// (Tests/PluginABI/v1.1), which zero-fills the page of `gpa` without reading
/// `annotated`, loads in the current host and can no longer destroy guest page 0.
@Suite("Plugin ABI 1.1 compatibility (scripted vCPU)")
struct PluginCompatibilityV11Tests {
    @Test("a v1.1 memory-fault plugin fills a located fault; a fault without an address leaves page 0 intact")
    func v1_1() throws {
        let rig = try FaultRig([.annotatedFault(gpa: 0x5000, size: 0x1000), .failure(errno: EFAULT).at(rip: 0x40_1000)],
                               plugins: [(PluginFixtures.fixture("CompatV1_1"), "")])
        #expect(rig.host.plugins.map(\.abiVersion) == ["1.1"])
        #expect(rig.run().description.hasPrefix(unresolvedBare + "0x401000"))
        #expect(try rig.page(0x5000) == [UInt8](repeating: 0, count: 4096))
        #expect(try rig.page(0) == FaultRig.pattern(0))
    }
}
