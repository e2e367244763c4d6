import CVMMPlugin
import Glibc

/// Runs `start` (which calls `pthread_create` and returns its result) on a thread that
/// may start threads, and returns what it returned; -errno when it cannot (the VMM is
/// ending). What the thread/1 extension needs from the VMM: a vCPU thread asking for a
/// thread may not start one itself (its seccomp list refuses `clone`).
public typealias PluginThreadStarter = @Sendable (_ start: @escaping @Sendable () -> Int32) -> Int32

/// The thread/1 extension: a plugin's handler asks, when it first needs a thread, for
/// one that its init would otherwise start in every run (the UART's console writer).
/// Offered only by a host whose VMM set `PluginHost.threadStarter`.
enum PluginThreadExtension {
    nonisolated(unsafe) static let table: UnsafeRawPointer = {
        let t = UnsafeMutablePointer<vmm_host_thread_t>.allocate(capacity: 1)
        t.initialize(to: vmm_host_thread_t())
        t.pointee.struct_size = UInt32(MemoryLayout<vmm_host_thread_t>.size)
        t.pointee.start_thread = { data, fn, arg, threadOut in
            guard let plugin = PluginHandle.instance(data) else { return -ESHUTDOWN }
            guard let fn, let threadOut else { return -EINVAL }
            guard let starter = plugin.host.threadStarter else { return -ESHUTDOWN }
            let created = UnsafeMutablePointer<pthread_t>.allocate(capacity: 1)
            defer { created.deallocate() }
            nonisolated(unsafe) let (out, argument) = (created, arg)
            let rc = starter { pthread_create(out, nil, fn, argument) }
            guard rc == 0 else { return rc < 0 ? rc : -rc }
            PluginPointer.store(UInt64(created.pointee), at: threadOut)
            return 0
        }
        return UnsafeRawPointer(t)
    }()

    static func lookup(_ id: UnsafePointer<CChar>, _ plugin: PluginInstance) -> UnsafeRawPointer? {
        guard strcmp(id, VMM_EXT_HOST_THREAD) == 0, plugin.host.threadStarter != nil else { return nil }
        return table
    }
}
