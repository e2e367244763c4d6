import Glibc
import VMMKit

/// One background thread running page fetches in order: the fetch behind each async
/// "not present" runs here while the guest runs another task.
final class AsyncPFFetcher: @unchecked Sendable {
    private enum Step { case stop, run(@Sendable () -> Void) }
    private let queue = AsyncPFMonitor<(jobs: [@Sendable () -> Void], stopping: Bool)>(([], false))
    private var thread: pthread_t?

    init() throws(VMMError) {
        thread = try startAsyncPFThread { [unowned self] in loop() }
    }

    deinit { close() }

    func enqueue(_ job: @escaping @Sendable () -> Void) {
        queue.update { $0.jobs.append(job) }
    }

    /// Runs what is queued, then stops the thread. Idempotent.
    func close() {
        guard let t = thread else { return }
        thread = nil
        queue.update { $0.stopping = true }
        pthread_join(t, nil)
    }

    private func loop() {
        while true {
            let step = queue.wait(timeoutMicroseconds: 100_000) { q -> Step? in
                if !q.jobs.isEmpty { return .run(q.jobs.removeFirst()) }
                return q.stopping ? .stop : nil
            }
            switch step {
            case .none: continue
            case .stop: return
            case let .run(job): job()
            }
        }
    }
}
