import CKVM
import CUFFD
import Glibc

extension VCPU {
    /// Starts this vCPU's thread: KVM_RUN in a loop, each exit dispatched through
    /// `dispatcher`, until a handler, the default policy or `stop()` ends it.
    public func start(_ dispatcher: ExitDispatcher) throws(VMMError) {
        _ = try liveFD()
        dispatcher.freeze()
        try control.start { [self] in runLoop(dispatcher) }
    }

    /// Runs the loop on the calling thread (for VMMs that manage their own threads).
    public func runLoop(_ dispatcher: ExitDispatcher) -> StopReason {
        dispatcher.freeze()
        hooks.tid.store(cuffd_gettid(), ordering: .releasing)
        if let refused = applySeccomp() { return refused }
        // Coalesced writes precede whatever made KVM_RUN return: replay them first.
        let ring = vm?.coalescedRing
        func drained() -> StopReason? {
            guard let ring, ring.active.load(ordering: .acquiring) else { return nil }
            return ring.drain(dispatcher, on: self)
        }
        while true {
            if control.pending.load(ordering: .sequentiallyConsistent),
               let reason = control.checkpoint(clearKick: { runPage.pointee.immediate_exit = 0 }) {
                return drained() ?? reason
            }
            var exit: VMExit
            do { exit = try run() } catch { return drained() ?? .error(error) }
            exits.add(1, ordering: .relaxed)
            if let reason = drained() { return reason }
            if case .interrupted = exit {
                runPage.pointee.immediate_exit = 0
                guard let hook = hooks.onInterrupt, let event = hook(self) else { continue }
                exit = event
            }
            if case let .memoryFault(fault) = exit {
                if let stuck = checkRepeatedFault(fault) { return stuck }
            } else {
                canary.resetFaults()
            }
            let observer = dispatcher.observer
            observer?.willDispatch(exit, on: self)
            let verdict = dispatcher.dispatch(&exit, on: self)
            observer?.didDispatch(exit, verdict: verdict, on: self)
            switch verdict {
            case .handled, .notMine, .backingReplaced:
                complete(exit)
            case let .stop(reason):
                complete(exit)
                return reason
            case let .fail(message):
                return .handlerFailed(message)
            }
        }
    }

    /// Waits for the thread to end and returns why it stopped.
    @discardableResult
    public func join() -> StopReason { control.join() }

    /// Asks the vCPU to stop; returns at once (use `join()` to wait).
    public func requestStop(_ reason: StopReason = .requested) {
        control.requestStop(reason, kick: kick)
    }

    /// Stops the vCPU and waits for its thread.
    @discardableResult
    public func stop() -> StopReason {
        requestStop(.requested)
        return join()
    }

    /// Parks the vCPU outside KVM_RUN and returns once it is parked; its state can then
    /// be read and written from this thread.
    public func pause() { control.pause(kick: kick) }

    public func resume() { control.resume() }

    /// Pauses only a vCPU nobody else paused; true when this call did (VMSupervisor).
    func pauseIfRunning() -> Bool { control.pauseIfRunning(kick: kick) }

    public var isPaused: Bool { control.isPaused }
    public var isRunning: Bool { control.isRunning }

    private func kick() {
        // Plain store into the shared page: the kernel reads it at entry.
        if fd >= 0 { runPage.pointee.immediate_exit = 1 }
    }
}
