import Glibc

/// A value guarded by a `pthread_mutex_t`: `Synchronization.Mutex`'s shape
/// (`withLock { value in … }`), with a lock ThreadSanitizer can see.
///
/// Why not `Mutex`: Swift 6.3.1's `Mutex` locks with atomics and futex calls inside the
/// uninstrumented standard library, so TSan sees no ordering between two threads'
/// sections under one `Mutex` and reports them as races (RELIABILITY.md, Sanitizers).
/// TSan intercepts `pthread_mutex_lock`/`unlock`, so sections under a `Lock` are ordered
/// for it, and a report under `-sanitize=thread` is a real race.
///
/// The mutex and the value live in heap allocations of their own, so their addresses
/// never move (a `pthread_mutex_t` must not be moved once initialised) while the `Lock`
/// itself is a noncopyable value stored like a `Mutex`. Not recursive: taking the lock
/// again inside `withLock` on the same thread deadlocks, as with `Mutex`.
public struct Lock<Value: ~Copyable>: ~Copyable {
    // @usableFromInline: withLock is inlined into callers in other modules (the demand
    // pager's fault path), as Mutex's is.
    @usableFromInline let mutex: UnsafeMutablePointer<pthread_mutex_t>
    @usableFromInline let value: UnsafeMutablePointer<Value>

    public init(_ initialValue: consuming sending Value) {
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

    /// Runs `body` with exclusive access to the value; the lock is released when `body`
    /// returns or throws.
    @inlinable
    public borrowing func withLock<Result: ~Copyable, E: Error>(
        _ body: (inout sending Value) throws(E) -> sending Result
    ) throws(E) -> sending Result {
        let status = pthread_mutex_lock(mutex)
        precondition(status == 0, "pthread_mutex_lock failed: \(status)")
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value.pointee)
    }
}

// As `Mutex`: the value is reached only inside `withLock`, one thread at a time, and
// `sending` hands values in and out without sharing them.
extension Lock: @unchecked Sendable where Value: ~Copyable {}
