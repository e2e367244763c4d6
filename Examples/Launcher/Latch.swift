import Glibc
import VMMKit

/// A flag that is set once, for good, and the threads that wait for it: the API's start
/// gate, the end of its server, `--max-seconds`' cancellation, a finished run. Four
/// places each paired a mutex, a condition and a Bool by hand.
final class Latch: @unchecked Sendable {
    private let lock = ConditionLock()
    private var isOpen = false // guarded by lock

    /// Sets the flag and wakes every waiter; later calls do nothing more.
    func open() {
        lock.lock()
        isOpen = true
        lock.broadcast()
        lock.unlock()
    }

    /// Returns once the latch is open.
    func wait() {
        lock.lock()
        while !isOpen { lock.wait() }
        lock.unlock()
    }

    /// `wait()` for at most `seconds` (clamped as `Deadline.after`); whether it opened.
    func wait(seconds: Double) -> Bool {
        let deadline = Deadline.after(seconds: seconds)
        lock.lock()
        while !isOpen && lock.wait(until: deadline) {}
        let opened = isOpen
        lock.unlock()
        return opened
    }
}
