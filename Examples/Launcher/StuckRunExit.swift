import Glibc
import Synchronization
import VMMKit

/// Ends the process when a run that was asked to stop does not: a vCPU inside a plugin
/// handler that never returns cannot be stopped or cancelled (plugins run in process),
/// so after `grace` seconds the launcher prints what it waited for and exits with the
/// documented status instead of hanging. `exit` runs the atexit handlers, so the UART
/// plugin's terminal restore still happens.
final class StuckRunExit: @unchecked Sendable {
    static let grace = 1.0
    private var lock = pthread_mutex_t()
    private var cond = pthread_cond_t()
    private var finished = false // guarded by lock
    private let armed = Atomic<Bool>(false)

    init() {
        pthread_mutex_init(&lock, nil)
        Deadline.initCondition(&cond)
    }

    /// The run returned: nothing armed will fire.
    func runFinished() {
        pthread_mutex_lock(&lock)
        finished = true
        pthread_cond_broadcast(&cond)
        pthread_mutex_unlock(&lock)
    }

    /// After `grace` seconds, unless the run has finished, writes `message()` to stderr
    /// and exits with `status`. Only the first call arms.
    func arm(status: Int32, _ message: @escaping @Sendable () -> String) {
        guard !armed.exchange(true, ordering: .relaxed) else { return }
        do { try HostThread.start("stuck-exit", detached: true) { self.waitThenExit(status, message) } } catch {
            // No thread to wait with: ending now beats a process that may never end.
            ExitStats.err(message())
            exit(status)
        }
    }

    private func waitThenExit(_ status: Int32, _ message: () -> String) {
        var deadline = Deadline.after(seconds: Self.grace)
        pthread_mutex_lock(&lock)
        while !finished {
            if pthread_cond_timedwait(&cond, &lock, &deadline) == ETIMEDOUT { break }
        }
        let done = finished
        pthread_mutex_unlock(&lock)
        guard !done else { return }
        ExitStats.err(message())
        exit(status)
    }
}
