import CVMMPlugin
import Testing
@testable import VMMPluginKit

/// What `PluginEntry.destroy` releases: the plugin, and with it the handlers the host
/// held for it, so a handler that captured its plugin strongly leaves no cycle.
@Suite("Swift plugin lifetime")
struct PluginLifetimeTests {
    nonisolated(unsafe) static var deinits = 0

    /// Keeps its services (which keep its handlers) and captures itself in a handler.
    final class Keeper: VMMPlugin {
        static let id = "org.vmmkit.test.keeper"
        let host: PluginServices
        var hlts = 0

        init(host: PluginServices, config: PluginConfig) throws {
            self.host = host
            try host.registerRaw(VMM_EXIT_HLT, base: 0, length: 0, name: "h") { [self] _ in
                hlts += 1
                return .handled
            }
        }

        deinit { PluginLifetimeTests.deinits += 1 }
    }

    @Test("a plugin whose handler captured it strongly is deinitialised by destroy, after its handler ran")
    func strongCaptureIsReleased() throws {
        var host = PluginExitViewTests.recordingHost
        host.struct_size = UInt32(MemoryLayout<vmm_host_t>.size)
        let before = Self.deinits
        let instance = withUnsafePointer(to: &host) { PluginEntry.create(Keeper.self, id: Keeper.id, host: $0, config: nil, error: nil) }
        try #require(instance != nil)
        // The host calls the handler as it would on a HLT.
        var record = vmm_exit_t()
        record.struct_size = UInt32(MemoryLayout<vmm_exit_t>.size)
        record.exit_class = VMM_EXIT_HLT.rawValue
        #expect(PluginExitViewTests.lastHandle?(PluginExitViewTests.lastUser, &record) == VMM_HANDLED.rawValue)
        #expect(Self.deinits == before)
        PluginEntry.destroy(instance)
        #expect(Self.deinits == before + 1)
    }
}
