import Glibc
import VMMKit

/// Pages delivered by the memory-fault plugins loaded in a `PluginHost` (e.g.
/// `Plugins/MemoryFault`, which reads a snapshot file): the pager turns every fault
/// into "page X is needed", the plugin writes page X with `write_guest`, the pager
/// installs it atomically. The plugin never sees userfaultfd, MMIO-in-RAM completion
/// or kicks; it only says what a page holds.
public final class PluginPageSource: PageSource, @unchecked Sendable {
    public let plugins: PluginHost

    public init(_ plugins: PluginHost) { self.plugins = plugins }

    public var name: String {
        // Only the plugins with a memory-fault handler: the others deliver no page.
        let ids = plugins.plugins.filter { $0.handlers.contains { $0.hasPrefix("memory_fault") } }.map(\.id)
        return "memory-fault plugin" + (ids.isEmpty ? "" : " (\(ids.joined(separator: ", ")))")
    }

    /// When every memory-fault plugin handler declared VMM_HANDLER_ANY_THREAD.
    public var mayBeCalledFromAnyThread: Bool { plugins.memoryFaultHandlersRunOnAnyThread }

    public func readPage(at gpa: UInt64, into buffer: UnsafeMutableRawBufferPointer, for request: PageRequest) throws(VMMError) {
        try plugins.fetchPage(at: gpa, into: buffer, vcpuID: request.vcpu ?? UInt32.max, access: request.access.rawValue)
    }
}
