import CVMMPlugin
import Glibc
import Synchronization

/// What a plugin holds of its host: the `vmm_host_t` table and the `host_data` its
/// calls pass back. Both outlive the instance, so that a call after `destroy()` (a
/// plugin thread that was not joined, a pointer kept too long) finds a table that still
/// exists and is refused with -ESHUTDOWN instead of reading freed memory.
///
/// Handles are recycled, but only after `quarantine` more instances have been retired
/// since, so memory stays bounded across any number of load/close cycles while a stale
/// call still meets its own, retired handle for a long while. Plugins are trusted code:
/// a call made concurrently with `destroy()` is the plugin's race; calls after it are
/// refused.
final class PluginHandle: @unchecked Sendable {
    let table: UnsafeMutablePointer<vmm_host_t>
    /// The PluginInstance (unretained) while it is live; 0 once retired.
    private let live = Atomic<UInt>(0)

    private init() {
        table = .allocate(capacity: 1)
        table.initialize(to: vmm_host_t())
    }

    /// The live instance behind `host_data`, nil once it was destroyed.
    @inline(__always)
    static func instance(_ data: UnsafeMutableRawPointer?) -> PluginInstance? {
        guard let data else { return nil }
        let handle = Unmanaged<PluginHandle>.fromOpaque(data)._withUnsafeGuaranteedRef { $0.live.load(ordering: .acquiring) }
        guard handle != 0, let raw = UnsafeMutableRawPointer(bitPattern: handle) else { return nil }
        return Unmanaged<PluginInstance>.fromOpaque(raw).takeUnretainedValue()
    }

    /// Retires the handle: every later call through it is refused. Idempotent.
    func retire() { live.store(0, ordering: .releasing) }

    static let quarantine = 64
    private static let pool = Lock<(retired: [PluginHandle], all: Int)>(([], 0))

    /// A handle for `instance`, its table filled with the host services.
    static func acquire(for instance: PluginInstance) -> PluginHandle {
        let handle: PluginHandle = pool.withLock { pool in
            if pool.retired.count > quarantine { return pool.retired.removeFirst() }
            pool.all += 1
            return PluginHandle()
        }
        let data = Unmanaged.passUnretained(handle).toOpaque()
        handle.table.initialize(to: vmm_host_t())
        HostServices.fill(handle.table, hostData: data)
        handle.live.store(UInt(bitPattern: Unmanaged.passUnretained(instance).toOpaque()), ordering: .releasing)
        return handle
    }

    /// Retires `handle` and queues it for reuse after the quarantine (instance deinit).
    static func recycle(_ handle: PluginHandle) {
        handle.retire()
        pool.withLock { $0.retired.append(handle) }
    }

    /// Handles ever created (for the soak test: bounded by live instances + quarantine + 1).
    static var created: Int { pool.withLock { $0.all } }
}
