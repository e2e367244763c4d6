import Glibc
import VMMKit

/// State behind a pthread mutex with a condition variable on CLOCK_MONOTONIC: what the
/// fetcher thread and a halted vCPU wait on. (`Synchronization.Mutex` has no condition.)
final class AsyncPFMonitor<State>: @unchecked Sendable {
    private var state: State
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    init(_ initial: State) {
        state = initial
        pthread_mutex_init(mutex, nil)
        Deadline.initCondition(cond)
    }

    deinit {
        pthread_cond_destroy(cond)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        cond.deallocate()
    }

    func withLock<R>(_ body: (inout State) -> R) -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return body(&state)
    }

    /// Runs `body` under the lock until it returns non-nil, waiting for a `broadcast`
    /// in between; gives up (nil) after `timeoutMicroseconds`.
    func wait<R>(timeoutMicroseconds: UInt64, _ body: (inout State) -> R?) -> R? {
        var deadline = timespec()
        clock_gettime(CLOCK_MONOTONIC, &deadline)
        let ns = UInt64(deadline.tv_nsec) + timeoutMicroseconds * 1_000
        deadline.tv_sec += Int(ns / 1_000_000_000)
        deadline.tv_nsec = Int(ns % 1_000_000_000)
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while true {
            if let result = body(&state) { return result }
            if pthread_cond_timedwait(cond, mutex, &deadline) == ETIMEDOUT { return body(&state) }
        }
    }

    /// Changes the state and wakes every waiter.
    func update(_ body: (inout State) -> Void) {
        pthread_mutex_lock(mutex)
        body(&state)
        pthread_cond_broadcast(cond)
        pthread_mutex_unlock(mutex)
    }
}

/// Starts a joinable pthread running `body`.
func startAsyncPFThread(_ body: @escaping () -> Void) throws(VMMError) -> pthread_t {
    try HostThread.start("async-pf", body)
}
