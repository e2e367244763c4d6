import Glibc

/// Starts one of the host's own threads (vCPUs, the fault router, the event notifier,
/// watchdogs, monitors): a pthread named `vmm-<name>` running a Swift closure.
///
/// The one place for the retained box that carries the closure through
/// `pthread_create`'s C callback: on failure it is released, so nothing leaks, and the
/// error says which thread could not start (EAGAIN under `RLIMIT_NPROC` or a full
/// thread table).
public enum HostThread {
    /// Starts the thread, joinable (the caller owns the id and joins it) unless `detached`.
    @discardableResult
    public static func start(_ name: String, detached: Bool = false,
                             _ body: @escaping () -> Void) throws(VMMError) -> pthread_t {
        final class Box {
            let name: String
            let body: () -> Void
            init(_ name: String, _ body: @escaping () -> Void) { self.name = name; self.body = body }
        }
        let box = Unmanaged.passRetained(Box(name, body)).toOpaque()
        var tid = pthread_t()
        let rc = pthread_create(&tid, nil, { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            ThreadName.setCurrent(box.name)
            box.body()
            return nil
        }, box)
        guard rc == 0 else {
            Unmanaged<Box>.fromOpaque(box).release()
            throw .systemCallFailed(name: "pthread_create of the \(name) thread", errno: .init(rawValue: rc))
        }
        if detached { pthread_detach(tid) }
        return tid
    }
}
