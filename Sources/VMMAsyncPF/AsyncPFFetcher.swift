import Glibc
import VMMKit

/// One background thread running page fetches in order: the fetch behind each async
/// "not present" runs here while the guest runs another task.
final class AsyncPFFetcher: @unchecked Sendable {
    private enum Step { case stop, run(@Sendable () -> Void) }
    /// Jobs from `head` on wait; those before it ran (dropped when they are half).
    private struct Queue {
        var jobs: [(@Sendable () -> Void)?] = []
        var head = 0
        var stopping = false
        var waiting: Int { jobs.count - head }
    }
    private let queue = AsyncPFMonitor<Queue>(Queue())
    private var thread: pthread_t?

    /// Fetches queued at most: a plugin thread asking for pages without pause grew the
    /// queue without bound (800,000 took 53 s to drain, each removed from the front).
    /// The AsyncPF plugin asks for at most 64 pages a vCPU, far below it.
    static let maxQueued = 1 << 16

    init() throws(VMMError) {
        thread = try startAsyncPFThread { [unowned self] in loop() }
    }

    deinit { close() }

    /// Queues `job`; false when `maxQueued` wait already, or the fetcher is closing.
    func enqueue(_ job: @escaping @Sendable () -> Void) -> Bool {
        var queued = false
        queue.update { q in
            guard !q.stopping, q.waiting < Self.maxQueued else { return }
            q.jobs.append(job)
            queued = true
        }
        return queued
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
                guard q.waiting > 0, let job = q.jobs[q.head] else { return q.stopping ? .stop : nil }
                q.jobs[q.head] = nil
                q.head += 1
                if q.head * 2 >= q.jobs.count { q.jobs.removeFirst(q.head); q.head = 0 }
                return .run(job)
            }
            switch step {
            case .none: continue
            case .stop: return
            case let .run(job): job()
            }
        }
    }
}
