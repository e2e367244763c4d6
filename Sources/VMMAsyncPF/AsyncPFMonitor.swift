import Glibc
import VMMKit

/// State behind a `ConditionLock`: what the fetcher thread and a halted vCPU wait on.
/// (`Synchronization.Mutex` has no condition.)
final class AsyncPFMonitor<State>: @unchecked Sendable {
    private var state: State
    private let lock = ConditionLock()

    init(_ initial: State) {
        state = initial
    }

    func withLock<R>(_ body: (inout State) -> R) -> R {
        lock.withLock { body(&state) }
    }

    /// Runs `body` under the lock until it returns non-nil, waiting for a `broadcast`
    /// in between; gives up (nil) after `timeoutMicroseconds`.
    func wait<R>(timeoutMicroseconds: UInt64, _ body: (inout State) -> R?) -> R? {
        let deadline = Deadline.after(seconds: Double(timeoutMicroseconds) / 1e6)
        lock.lock()
        defer { lock.unlock() }
        while true {
            if let result = body(&state) { return result }
            if !lock.wait(until: deadline) { return body(&state) }
        }
    }

    /// Changes the state and wakes every waiter.
    func update(_ body: (inout State) -> Void) {
        lock.lock()
        body(&state)
        lock.broadcast()
        lock.unlock()
    }
}

/// Starts a joinable pthread running `body`.
func startAsyncPFThread(_ body: @escaping () -> Void) throws(VMMError) -> pthread_t {
    try HostThread.start("async-pf", body)
}
