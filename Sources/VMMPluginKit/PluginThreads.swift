import CVMMPlugin
import Glibc

/// The host's thread/1 extension (`VMM_EXT_HOST_THREAD`): a thread started when a
/// handler first needs it, from the vCPU thread that may not start one itself.
public struct PluginThreadService: @unchecked Sendable {
    private let table: UnsafePointer<vmm_host_thread_t>
    private let data: UnsafeMutableRawPointer?

    init?(_ raw: UnsafePointer<vmm_host_t>) {
        guard let found = raw.pointee.get_extension(raw.pointee.host_data, VMM_EXT_HOST_THREAD) else { return nil }
        let table = found.assumingMemoryBound(to: vmm_host_thread_t.self)
        // A table smaller than this SDK's lacks the function: as if it were not offered.
        guard table.pointee.struct_size >= UInt32(MemoryLayout<vmm_host_thread_t>.size),
              table.pointee.start_thread != nil else { return nil }
        self.table = table
        data = raw.pointee.host_data
    }

    /// [any-thread] Starts a joinable thread running `entry(argument)`; join or detach it
    /// before the plugin's `shutdown` returns. The errno (positive) on failure.
    public func start(_ entry: @convention(c) (UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer?,
                      _ argument: UnsafeMutableRawPointer?) -> Result<pthread_t, Errno> {
        var thread: UInt64 = 0
        let rc = table.pointee.start_thread(data, entry, argument, &thread)
        guard rc == 0 else { return .failure(Errno(rawValue: rc < 0 ? -rc : rc)) }
        return .success(pthread_t(thread))
    }

    /// An errno from the host, positive (`EAGAIN`, `ESHUTDOWN`).
    public struct Errno: Error, Sendable, Equatable, CustomStringConvertible {
        public let rawValue: Int32
        public init(rawValue: Int32) { self.rawValue = rawValue }
        public var description: String { "\(String(cString: strerror(rawValue))) (errno \(rawValue))" }
    }
}

extension PluginServices {
    /// [load-thread] The host's thread/1, or nil when it offers none (then start the
    /// thread in `init`, as before the extension existed).
    public var threads: PluginThreadService? { PluginThreadService(raw) }
}
