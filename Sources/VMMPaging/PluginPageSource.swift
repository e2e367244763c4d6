import CUFFD
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
        let ids = plugins.plugins.map(\.id)
        return "memory-fault plugin" + (ids.isEmpty ? "" : " (\(ids.joined(separator: ", ")))")
    }

    public func readPage(at gpa: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(VMMError) {
        // On a vCPU thread the record names that vCPU; on the fault router, nobody's.
        let tid = cuffd_gettid()
        let vcpu = plugins.vm.vcpus.first { $0.hooks.threadID == tid }
        try plugins.fetchPage(at: gpa, into: buffer, vcpuID: vcpu?.id ?? UInt32.max)
    }
}
