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
    private let finished = Latch()
    private let armed = Atomic<Bool>(false)

    /// The run returned: nothing armed will fire.
    func runFinished() { finished.open() }

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
        guard !finished.wait(seconds: Self.grace) else { return }
        ExitStats.err(message())
        exit(status)
    }
}
