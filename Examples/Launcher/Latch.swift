import Glibc
import VMMKit

/// A flag that is set once, for good, and the threads that wait for it: the API's start
/// gate, the end of its server, `--max-seconds`' cancellation, a finished run. Four
/// places each paired a mutex, a condition and a Bool by hand.
///
/// The mutex and the condition are heap-allocated: a `pthread_mutex_t` must not move
/// once initialised, and a class's stored property is not promised a fixed address when
/// passed with `&`. The condition times its waits on CLOCK_MONOTONIC (`Deadline`).
final class Latch: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var isOpen = false // guarded by mutex

    init() {
        pthread_mutex_init(mutex, nil)
        Deadline.initCondition(cond)
    }

    deinit {
        pthread_cond_destroy(cond)
        pthread_mutex_destroy(mutex)
        cond.deallocate()
        mutex.deallocate()
    }

    /// Sets the flag and wakes every waiter; later calls do nothing more.
    func open() {
        pthread_mutex_lock(mutex)
        isOpen = true
        pthread_cond_broadcast(cond)
        pthread_mutex_unlock(mutex)
    }

    /// Returns once the latch is open.
    func wait() {
        pthread_mutex_lock(mutex)
        while !isOpen { pthread_cond_wait(cond, mutex) }
        pthread_mutex_unlock(mutex)
    }

    /// `wait()` for at most `seconds` (clamped as `Deadline.after`); whether it opened.
    func wait(seconds: Double) -> Bool {
        var deadline = Deadline.after(seconds: seconds)
        pthread_mutex_lock(mutex)
        while !isOpen && pthread_cond_timedwait(cond, mutex, &deadline) == 0 {}
        let opened = isOpen
        pthread_mutex_unlock(mutex)
        return opened
    }
}
