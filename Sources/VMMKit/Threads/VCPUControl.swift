import Glibc
import Synchronization

/// Cross-thread control of one vCPU thread: stop, pause, resume, and the kick that gets
/// a vCPU out of KVM_RUN even while it spins in guest code.
///
/// The kick is `immediate_exit = 1` (covers a thread that is about to enter KVM_RUN)
/// followed by a real-time signal with a no-op handler installed without SA_RESTART
/// (covers a thread already inside it): KVM_RUN then returns EINTR.
final class VCPUControl: @unchecked Sendable {
    enum Request: Equatable { case run, pause, stop(StopReason) }

    private let lock = ConditionLock()
    // Guarded by lock:
    private var request = Request.run
    /// How many pauses are in force: each `pause` that returned holding the vCPU adds
    /// one and its `resume` removes it, so one party's resume (the halt monitor's, say)
    /// never lets a vCPU run that another party (the control API) still holds paused.
    private var pauseHolds = 0
    private var paused = false
    /// The thread running the loop: one `start` made (`ownsThread`, joined with
    /// pthread_join) or a caller of `VCPU.runLoop` (`enterLoop`).
    private var thread: pthread_t?
    private var ownsThread = false
    private var finished = false
    private var joined = false
    private var result: StopReason?
    /// Set whenever `request` is not `.run`: the run loop's only per-exit check.
    let pending = Atomic<Bool>(false)

    private func locked<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T { try lock.withLock(body) }

    static let kickSignal: Int32 = __libc_current_sigrtmin()

    private static let installOnce: Void = {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in }
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0 // no SA_RESTART: KVM_RUN must return EINTR
        sigaction(kickSignal, &action, nil)
    }()

    static func installKickHandler() { _ = installOnce }

    /// Starts the thread, named `vmm-<name>`, running `body`. Once per vCPU.
    func start(name: String, _ body: @escaping () -> StopReason) throws(VMMError) {
        try locked { () throws(VMMError) in
            guard !ownsThread else { throw .invalidArgument("vCPU thread already started") }
            guard !loopActive else { throw Self.loopRunning }
            let started = try HostThread.start(name) {
                var set = sigset_t()
                sigemptyset(&set)
                sigaddset(&set, VCPUControl.kickSignal)
                pthread_sigmask(SIG_UNBLOCK, &set, nil)
                self.finish(body())
            }
            (thread, ownsThread, finished, joined, result) = (started, true, false, false, nil)
        }
    }

    static let loopRunning = VMMError.invalidArgument("the vCPU is already running its loop on another thread")

    private var loopActive: Bool { thread != nil && !finished }

    /// Whether the calling thread is the one running the loop (a handler's).
    private var onLoopThread: Bool {
        guard let thread, !finished else { return false }
        return pthread_equal(thread, pthread_self()) != 0
    }

    /// `VCPU.runLoop` on the caller's thread: registers it as the loop's thread, so that
    /// stop, pause and `join` (and a VM's close) reach it as they reach a started one,
    /// and unblocks the kick signal on it. Refused while another loop runs the vCPU, or
    /// while the thread `start` made has not been joined. Returns the signal mask to put
    /// back at `leaveLoop`.
    func enterLoop() throws(VMMError) -> sigset_t {
        try locked { () throws(VMMError) in
            guard !loopActive else { throw Self.loopRunning }
            guard !ownsThread || joined else {
                throw .invalidArgument("the vCPU's thread from start() has ended but was not joined: join() it first")
            }
            (thread, ownsThread, finished, joined, result) = (pthread_self(), false, false, false, nil)
        }
        var set = sigset_t(), old = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, Self.kickSignal)
        pthread_sigmask(SIG_UNBLOCK, &set, &old)
        return old
    }

    /// The end of a `runLoop` that `enterLoop` admitted.
    func leaveLoop(_ reason: StopReason, mask: sigset_t) {
        finish(reason)
        var old = mask
        pthread_sigmask(SIG_SETMASK, &old, nil)
    }

    private func finish(_ reason: StopReason) {
        locked {
            result = reason
            finished = true
            lock.broadcast()
        }
    }

    /// Waits for the loop to end; returns why it stopped (`.requested` if it never
    /// started). On the loop's own thread (a handler) it cannot wait for itself: it
    /// returns the stop requested (`.requested` if none) at once.
    func join() -> StopReason {
        let (tid, own): (pthread_t?, Bool) = locked {
            if onLoopThread { return (nil, true) }
            guard let t = thread, ownsThread, !joined else { return (nil, false) }
            joined = true
            return (t, false)
        }
        if own { return locked { request.stopReason ?? .requested } }
        if let tid { pthread_join(tid, nil) }
        return locked {
            while thread != nil && !finished { lock.wait() }
            return result ?? (request.stopReason ?? .requested)
        }
    }

    /// Requests a stop (the first reason wins) and kicks.
    func requestStop(_ reason: StopReason, kick: () -> Void) {
        let shouldKick: Bool = locked {
            if case .stop = request { return false }
            request = .stop(reason)
            pending.store(true, ordering: .sequentiallyConsistent)
            lock.broadcast()
            return thread != nil && !finished
        }
        if shouldKick { kick(); signalThread() }
    }

    /// Requests a pause, kicks, and waits until the vCPU is parked (or has finished, or
    /// was stopped). A second caller while a pause is pending waits for the same park
    /// rather than returning early, and holds the vCPU too: it runs again only once every
    /// pause has had its `resume`. On the loop's own thread (a handler) it cannot wait:
    /// the pause is taken and the vCPU parks once the handler returns.
    func pause(kick: () -> Void) {
        var own = false
        let shouldKick: Bool? = locked {
            guard thread != nil, !finished else { return nil }
            own = onLoopThread
            switch request {
            case .stop: return nil
            case .pause:
                pauseHolds += 1
                return false
            case .run:
                request = .pause
                pauseHolds = 1
                pending.store(true, ordering: .sequentiallyConsistent)
                return true
            }
        }
        guard let shouldKick, !own else { return }
        if shouldKick { kick(); signalThread() }
        waitUntilParked()
    }

    /// `pause`, but only when nobody else has paused or stopped the vCPU; returns whether
    /// this call paused it (then only its caller resumes it). For monitors (VMSupervisor)
    /// that must never undo another party's pause. False on the loop's own thread.
    func pauseIfRunning(kick: () -> Void) -> Bool {
        let running: Bool = locked {
            guard request == .run, thread != nil, !finished, !onLoopThread else { return false }
            request = .pause
            pauseHolds = 1
            pending.store(true, ordering: .sequentiallyConsistent)
            return true
        }
        guard running else { return false }
        kick()
        signalThread()
        waitUntilParked()
        return true
    }

    /// `paused` may still be true from an earlier pause whose resume the vCPU has not
    /// seen yet: it is then still parked in `checkpoint` and will see this pause, so
    /// that counts as parked.
    private func waitUntilParked() {
        locked { while !paused && !finished && request == .pause { lock.wait() } }
    }

    /// Ends one pause; the vCPU runs again when no pause holds it. A resume without a
    /// pause in force does nothing.
    func resume() {
        locked {
            guard request == .pause, pauseHolds > 0 else { return }
            pauseHolds -= 1
            guard pauseHolds == 0 else { return }
            request = .run
            lock.broadcast()
        }
    }

    var isPaused: Bool { locked { paused } }
    var isRunning: Bool { locked { thread != nil && !finished } }

    /// Called on the vCPU thread when `pending` is set. Parks while paused; returns the
    /// stop reason if asked to stop, nil to go on running (the kick is left set: the
    /// caller's next KVM_RUN returns EINTR and runs its interrupt hook).
    func checkpoint() -> StopReason? {
        locked {
            while true {
                switch request {
                case let .stop(reason):
                    return reason
                case .pause:
                    if !paused { paused = true; lock.broadcast() }
                    lock.wait()
                case .run:
                    paused = false
                    pending.store(false, ordering: .sequentiallyConsistent)
                    return nil
                }
            }
        }
    }

    /// Makes the run loop pass its checkpoint after the exit in progress, with nothing
    /// requested: for state it reads only at its top, such as a coalesced ring turned on
    /// while it runs its hot path (which tests `pending` alone after each exit). Set
    /// under the mutex, so a `checkpoint` clearing `pending` sees what came before it.
    func poke() {
        locked { pending.store(true, ordering: .sequentiallyConsistent) }
    }

    /// The kick signal alone: no request, no `immediate_exit`.
    func signal() { signalThread() }

    private func signalThread() {
        locked {
            if let t = thread, !finished { pthread_kill(t, Self.kickSignal) }
        }
    }
}

extension VCPUControl.Request {
    var stopReason: StopReason? { if case let .stop(r) = self { r } else { nil } }
}
