import CVMMPlugin
import Glibc
import Testing
@testable import VMMPluginKit

/// The SDK's side of the ABI 1.2 state table: what a host's save calls get back.
@Suite("Plugin SDK: state table")
struct PluginStateTableTests {
    /// A plugin whose state is a counter, as 64 bytes.
    final class Counter: PluginStateful {
        var value: UInt8 = 1
        init() {}
        required init(host: PluginServices, config: PluginConfig) throws {}
        var stateVersion: UInt32 { 1 }
        func saveState() throws -> [UInt8] { [UInt8](repeating: value, count: 64) }
        func restoreState(_ bytes: [UInt8], version: UInt32) throws {}
    }

    /// `save` as a host calls it: the first byte of what was written, or the errno.
    static func save(_ table: PluginStateTable, capacity: Int) -> (rc: Int32, size: UInt64, first: UInt8?) {
        var buffer = [UInt8](repeating: 0, count: capacity)
        var size: UInt64 = 0
        let rc = buffer.withUnsafeMutableBytes { table.table.pointee.save(table.table.pointee.user, $0.baseAddress, UInt64(capacity), &size) }
        return (rc, size, rc == 0 && size > 0 ? buffer[0] : nil)
    }

    @Test("the blob kept after -ENOSPC serves the retry only: a host that gave up, then saved again later, gets the state of then")
    func pendingServesOnlyTheRetry() {
        var host = vmm_host_t()
        let services = withUnsafePointer(to: &host) { PluginServices($0, pluginName: "test") }
        let plugin = Counter()
        let table = PluginStateTable(plugin, services: services)
        table.plugin = plugin
        // The usual exchange: asked with no room, then with the room it said.
        #expect(Self.save(table, capacity: 0) == (-ENOSPC, 64, nil))
        plugin.value = 2 // a plugin thread moves on between the two calls: the retry still gets the blob sized before
        #expect(Self.save(table, capacity: 64) == (0, 64, 1))
        // A host that gave up after the -ENOSPC (a state over its limit): nothing kept
        // from then may reach the next snapshot.
        #expect(Self.save(table, capacity: 0) == (-ENOSPC, 64, nil))
        plugin.value = 3
        #expect(Self.save(table, capacity: 0) == (-ENOSPC, 64, nil))
        #expect(Self.save(table, capacity: 64) == (0, 64, 3))
        // A retry with too little room saves afresh; the one after it, with room, gets
        // the blob of the call just before.
        #expect(Self.save(table, capacity: 0) == (-ENOSPC, 64, nil))
        plugin.value = 4
        #expect(Self.save(table, capacity: 16) == (-ENOSPC, 64, nil))
        plugin.value = 5
        #expect(Self.save(table, capacity: 128) == (0, 64, 4))
        withExtendedLifetime(host) {}
    }
}
