import Glibc

/// A mutex and the condition variable that goes with it, for a thread that sleeps until
/// another changes what it waits for: the VM's supervisor, the plugin watchdog, the
/// demand pager's fetches, the async-PF fetcher, the launcher's device threads. Seven
/// places paired the two by hand, and two of them never destroyed theirs.
///
/// Both live in allocations of their own: a `pthread_mutex_t` must not move once
/// initialised, and a stored property passed with `&` is promised its address only for
/// that call. Timed waits run on CLOCK_MONOTONIC (`Deadline`), so a stepped wall clock
/// moves none of them. A pthread mutex, as `Lock`'s, so ThreadSanitizer sees the order
/// it gives. The state it guards is the owner's: every wait loops on the owner's own
/// condition, since a wait may also return for no reason (POSIX's spurious wake-up).
/// Not recursive.
public final class ConditionLock: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    public init() {
        let status = pthread_mutex_init(mutex, nil)
        precondition(status == 0, "pthread_mutex_init failed: \(status)")
        Deadline.initCondition(condition)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    public func lock() { pthread_mutex_lock(mutex) }
    public func unlock() { pthread_mutex_unlock(mutex) }

    /// Runs `body` under the lock.
    public func withLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        lock()
        defer { unlock() }
        return try body()
    }

    /// [under the lock] Releases it, sleeps until woken, and takes it again.
    public func wait() { pthread_cond_wait(condition, mutex) }

    /// [under the lock] `wait()` until `deadline` (from `Deadline.after`) at the latest;
    /// false when the deadline passed.
    public func wait(until deadline: timespec) -> Bool {
        var deadline = deadline
        return pthread_cond_timedwait(condition, mutex, &deadline) != ETIMEDOUT
    }

    /// Wakes one waiter; call it under the lock, after changing what they wait for.
    public func signal() { pthread_cond_signal(condition) }

    /// Wakes every waiter; call it under the lock, after changing what they wait for.
    public func broadcast() { pthread_cond_broadcast(condition) }
}
