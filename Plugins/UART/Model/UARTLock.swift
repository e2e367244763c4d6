import Glibc

/// A value guarded by a `pthread_mutex_t`, with `Synchronization.Mutex`'s `withLock`.
///
/// The same lock as VMMKit's `Lock` (the reason for both is there: ThreadSanitizer cannot
/// see `Mutex`, so under `scripts/test-sanitizers tsan` a contended `Mutex` section is
/// reported as a race). A copy because this model depends on nothing: the same code is
/// unit-tested, wired in-process (UARTVMM, instrumented under TSan) and built into
/// libUART.so on the plugin SDK alone.
struct UARTLock<Value: ~Copyable>: ~Copyable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let value: UnsafeMutablePointer<Value>

    init(_ initialValue: consuming sending Value) {
        mutex = .allocate(capacity: 1)
        let status = pthread_mutex_init(mutex, nil)
        precondition(status == 0, "pthread_mutex_init failed: \(status)")
        value = .allocate(capacity: 1)
        value.initialize(to: initialValue)
    }

    deinit {
        value.deinitialize(count: 1)
        value.deallocate()
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    borrowing func withLock<Result: ~Copyable, E: Error>(
        _ body: (inout sending Value) throws(E) -> sending Result
    ) throws(E) -> sending Result {
        let status = pthread_mutex_lock(mutex)
        precondition(status == 0, "pthread_mutex_lock failed: \(status)")
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value.pointee)
    }
}

extension UARTLock: @unchecked Sendable where Value: ~Copyable {}
