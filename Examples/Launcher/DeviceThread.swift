import Glibc
import VMMKit

/// A device's lock, and the thread beside the vCPUs that raises its interrupts as time
/// passes (the RTC's, the HPET's). The device keeps its state under this lock; the
/// thread sleeps on it until the device's next event or a change the device signals.
/// The thread starts on demand, when the guest first enables what needs it (a vCPU,
/// which may not create threads, asks through `ThreadRequest`; so does a restore, before
/// the vCPUs run), so a guest that never does never has it; `stop` ends it with the run.
final class DeviceThread: @unchecked Sendable {
    private let name: String
    private let changes = ConditionLock()
    // Guarded by the lock:
    private var thread: pthread_t?
    /// Set by `stop`: the loop ends, and no thread starts again.
    private(set) var stopping = false
    /// Set by `hold`: the loop raises nothing until `release` (a snapshot reads the
    /// device's registers and the in-kernel irqchip as of one moment).
    private(set) var held = false
    /// How often the loop found itself held and slept (`waitIfHeld`), for tests.
    private(set) var heldWaits = 0

    /// `name`: the thread's, `vmm-` added (`HostThread`).
    init(name: String) {
        self.name = name
    }

    deinit { stop() }

    func lock() { changes.lock() }
    func unlock() { changes.unlock() }

    func locked<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T { try changes.withLock(body) }

    /// Keeps the thread from raising anything until `release`; returns once a raise
    /// under way (it holds the lock) is done.
    func hold() { locked { held = true } }

    /// Ends a `hold`: what came due meanwhile is raised now.
    func release() {
        locked {
            held = false
            signal()
        }
    }

    /// [the thread] A device's interrupt loop: under the lock until `stop`, each `pass`
    /// (none while a `hold` lasts) raises what is due and says how long to sleep: nil
    /// until signalled, 0 not at all (it raised and looks again), else seconds.
    func serve(_ pass: () -> Double?) {
        lock()
        defer { unlock() }
        while !stopping {
            if waitIfHeld() { continue }
            guard let seconds = pass() else { wait(seconds: nil); continue }
            if seconds > 0 { wait(seconds: seconds) }
        }
    }

    /// [the thread, under the lock] Sleeps while a `hold` lasts; true when it did (the
    /// loop then looks at the device again).
    private func waitIfHeld() -> Bool {
        guard held else { return false }
        heldWaits += 1
        changes.wait()
        return true
    }

    /// [under the lock] Wakes the thread: the device changed what it waits for.
    func signal() { changes.signal() }

    /// [the thread, under the lock] Sleeps until signalled, or until `seconds` have
    /// passed (nil: no limit).
    func wait(seconds: Double?) {
        guard let seconds else { changes.wait(); return }
        let deadline = Deadline.after(seconds: seconds)
        _ = changes.wait(until: deadline)
    }

    /// Starts `loop` on the thread, unless one runs or the run is over, if `wanted`
    /// (the device's rule, asked under the lock) says so. `loop` takes the lock itself
    /// and returns once `stopping` is set.
    func start(when wanted: @escaping () -> Bool, _ loop: @escaping () -> Void) throws(VMMError) {
        guard locked({ thread == nil && !stopping && wanted() }) else { return }
        try ThreadRequest.run { [self] () throws(VMMError) in
            lock()
            defer { unlock() }
            guard thread == nil, !stopping, wanted() else { return } // another vCPU's request started it
            thread = try HostThread.start(name, loop)
        }
    }

    /// Ends the thread, if it started, and keeps any other from starting (the run is over).
    func stop() {
        lock()
        stopping = true
        signal()
        let running = thread
        thread = nil
        unlock()
        if let running { pthread_join(running, nil) }
    }
}
