import CKVM
import CUFFD
import Glibc

extension VCPU {
    /// Starts this vCPU's thread: KVM_RUN in a loop, each exit dispatched through
    /// `dispatcher`, until a handler, the default policy or `stop()` ends it.
    public func start(_ dispatcher: ExitDispatcher) throws(VMMError) {
        _ = try liveFD()
        dispatcher.freeze()
        try control.start(name: "vcpu\(id)") { [self] in loop(dispatcher) }
    }

    /// Runs the loop on the calling thread (for VMMs that manage their own threads).
    ///
    /// The calling thread becomes the vCPU's thread until the loop returns: `stop()`,
    /// `pause()` and `join()` from other threads, and the VM's `close()`, reach it as
    /// they reach one `start` made (the kick signal is unblocked on it meanwhile, and
    /// its mask put back after). Refused with `.error(.invalidArgument)` while the vCPU
    /// runs its loop on another thread (`start`, or another `runLoop`), or while the
    /// thread `start` made has ended unjoined; `.error(.closed)` once the VM is closed.
    public func runLoop(_ dispatcher: ExitDispatcher) -> StopReason {
        if let kvm = backend as? KVMBackend, kvm.fd < 0 { return .error(.closed("vCPU \(id)")) }
        let mask: sigset_t
        do { mask = try control.enterLoop() } catch { return .error(error) }
        let reason = loop(dispatcher)
        control.leaveLoop(reason, mask: mask)
        return reason
    }

    /// The loop itself, on the thread `start` made or `runLoop`'s caller.
    func loop(_ dispatcher: ExitDispatcher) -> StopReason {
        dispatcher.freeze()
        hooks.tid.store(cuffd_gettid(), ordering: .releasing)
        if let refused = applySeccomp() { return refused }
        // Coalesced writes precede whatever made KVM_RUN return: replay them first.
        // Kept alive by `ringOwner` for the whole loop and reached unmanaged, so the
        // per-exit check retains nothing.
        let ringOwner = vm?.coalescedRing
        defer { withExtendedLifetime(ringOwner) {} }
        let ring = ringOwner.map { Unmanaged.passUnretained($0) }
        func drained() -> StopReason? {
            guard let ring, ring._withUnsafeGuaranteedRef({ $0.active.load(ordering: .acquiring) }) else { return nil }
            return ring._withUnsafeGuaranteedRef { $0.drain(dispatcher, on: self) }
        }
        // Fixed once the dispatcher is frozen (setObserver throws after that).
        let observer = dispatcher.observer
        // Without an observer, PIO and MMIO exits take the hot path (VCPU+HotPath.swift)
        // whenever no coalesced ring needs replaying first.
        let hot = observer == nil ? dispatcher.frozenTables : nil
        // The hot path's out-parameters, written only for the exits it does not finish.
        var hotExit = VMExit.interrupted, hotVerdict = ExitVerdict.handled
        // Whether the last KVM_RUN consumed every completion: false after an exit, true
        // after EINTR (the kernel completes pending I/O before it looks at
        // `immediate_exit`). `completions` counts the runs spent reaching it.
        var atBoundary = true, completions = 0
        while true {
            // After a resume `immediate_exit` stays set: the next KVM_RUN returns EINTR at
            // once and the interrupt hook below runs, as for any kick. The kick may also
            // have been another thread's (an async-PF "ready" or a fault the router
            // posted before the pause or while parked); clearing it here lost that work
            // until some later kick, which a guest spinning at ring 3 never causes (a
            // restored guest waited forever for its "ready").
            var completing = false
            if control.pending.load(ordering: .sequentiallyConsistent) {
                // A pause or stop lands between instructions, as QEMU's does: the exit
                // just handled may be half of one (`outs` from MMIO: the MMIO read, then
                // a PIO write the kernel returns from the KVM_RUN that completes it).
                // Parked before it, the state read for a snapshot was mid-instruction,
                // and `completePendingIO`'s run returned that second exit, which nobody
                // dispatched: the snapshot failed and the resumed guest lost the write.
                // A vCPU closed meanwhile (by a handler closing its own VM) has nothing to complete.
                if !atBoundary && completions < Self.completionLimit && !isClosedKVM {
                    completions += 1
                    completing = true
                    ckvm_set_immediate_exit(runPage, 1)
                } else {
                    completions = 0
                    parkedMidInstruction.store(!atBoundary, ordering: .releasing)
                    let reason = control.checkpoint()
                    parkedMidInstruction.store(false, ordering: .releasing)
                    if let reason { return drained() ?? reason }
                }
            }
            var exit: VMExit
            if let hot, !completing, !(ring?._withUnsafeGuaranteedRef { $0.active.load(ordering: .acquiring) } ?? false) {
                switch runHotExits(hot, &hotExit, &hotVerdict) {
                case .yield:
                    atBoundary = false
                    continue
                case let .stop(reason): return reason
                case .general: exit = hotExit // the general path below
                }
            } else {
                do { exit = try run() } catch { return drained() ?? .error(error) }
                // Only this thread writes the count: a plain store, not a locked add.
                exits.store(exits.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
                if let reason = drained() { return reason }
            }
            atBoundary = false
            if case .interrupted = exit {
                atBoundary = true
                ckvm_set_immediate_exit(runPage, 0)
                guard let hook = hooks.onInterrupt, let event = hook(self) else { continue }
                exit = event
            }
            if case let .memoryFault(fault) = exit {
                if let stuck = checkRepeatedFault(fault) { return stuck }
            } else {
                // A recorded exit breaks a run of faults by itself; an interrupt hook's does not.
                canary.resetFaults()
            }
            observer?.willDispatch(exit, on: self)
            let verdict = dispatcher.dispatch(&exit, on: self)
            observer?.didDispatch(exit, verdict: verdict, on: self)
            if let reason = settle(exit, verdict) { return reason }
        }
    }

    /// Completion runs a pause or stop may take to reach an instruction boundary (a
    /// string instruction over MMIO chains an exit an element, and KVM goes back to the
    /// guest, where `immediate_exit` stops it, after at most 1024); past it the vCPU parks
    /// where it is. At 64, a `rep movsd` of 1 KiB from MMIO parked mid-instruction at
    /// most pauses, and a snapshot then failed.
    static let completionLimit = 1100

    /// How `runHotExits` ended.
    private enum HotLoopEnd {
        /// `control.pending`: a stop or pause is requested, or a coalesced ring was turned
        /// on (`VCPUControl.poke`): back to the loop's top.
        case yield
        case stop(StopReason)
        /// An exit for the general path, in the loop's `hotExit`.
        case general
    }

    /// The run loop's hot path, as a loop of its own: as long as exits are PIO, MMIO or
    /// HLT that handlers finish, they never leave this function. Kept apart from `runLoop`,
    /// whose general path keeps many values live, its loop-invariant values stay in
    /// registers instead of being reloaded from the stack at every exit.
    ///
    /// It runs only while the coalesced ring is off, and tests nothing but
    /// `control.pending` after each exit: a ring turned on meanwhile pokes the vCPU
    /// (`VirtualMachine.registerCoalesced`). Testing the ring here as well cost every
    /// exit 7-9 instructions (callgrind), most of them from the register it kept live.
    @inline(__always)
    private func runHotExits(_ hot: Unmanaged<FrozenTables>, _ hotExit: inout VMExit,
                             _ hotVerdict: inout ExitVerdict) -> HotLoopEnd {
        let entry = entryRef
        if let function = entry._withUnsafeGuaranteedRef({ $0.function }) {
            return runHotExits(hot, FunctionEntry(function: function), &hotExit, &hotVerdict)
        }
        return runHotExits(hot, BackendCall(entry), &hotExit, &hotVerdict)
    }

    @inline(__always)
    private func runHotExits<E: GuestEntry>(_ hot: Unmanaged<FrozenTables>, _ guest: E, _ hotExit: inout VMExit,
                                            _ hotVerdict: inout ExitVerdict) -> HotLoopEnd {
        if let box = hot._withUnsafeGuaranteedRef({ $0.soleHalt }) {
            if let halt = PluginHalt(box, vcpu: self) { return hotLoop(hot, guest, halt, &hotExit, &hotVerdict) }
            return hotLoop(hot, guest, ClosureHalt(box: box), &hotExit, &hotVerdict)
        }
        return hotLoop(hot, guest, TableHalt(), &hotExit, &hotVerdict)
    }

    /// The hot loop, specialised for how a HLT is dispatched (`HaltDispatch`): through the
    /// kind table, or straight to the one plugin handler the tables hold for HLT, its call
    /// inlined. Through the table the plugin's call was a function of its own (inlined into
    /// the one loop for every shape it crowded that loop's registers), plus the table's
    /// lookup: a C plugin's HLT took 148 instructions, now 110 (callgrind). The closure
    /// paths are the table's, unchanged; a plugin's PIO and MMIO pay 3-4 more when it
    /// also handles HLT.
    ///
    /// It is specialised as well for how the guest is entered (`GuestEntry`): the backend
    /// is fixed while the vCPU runs, so the test for a KVM backend and the loads that
    /// reach it leave the loop (3-7 instructions fewer per exit, callgrind).
    @inline(never)
    private func hotLoop<E: GuestEntry, H: HaltDispatch>(_ hot: Unmanaged<FrozenTables>, _ guest: E, _ halt: H,
                                                         _ hotExit: inout VMExit, _ hotVerdict: inout ExitVerdict) -> HotLoopEnd {
        var failure: VMMError?
        while true {
            let step = runHot(hot, guest, &hotExit, &hotVerdict, &failure)
            // Only this thread writes the count: a plain store, not a locked add.
            exits.store(exits.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
            switch step {
            case .handled:
                break
            case .halted:
                // A HLT completes nothing: only a stop or a failure needs `settle`.
                switch halt.dispatch(hot, &hotExit, self, &hotVerdict) {
                case .handled: break
                case .unclaimed: return .stop(.halted)
                case .other:
                    switch hotVerdict {
                    case .handled, .notMine, .backingReplaced: break
                    case let .stop(reason): return .stop(reason)
                    case let .fail(message): return .stop(.handlerFailed(message))
                    }
                }
            case .ranged, .unclaimed:
                if case .unclaimed = step { hotVerdict = hot._withUnsafeGuaranteedRef { $0.dispatchByKind(&hotExit, self) } }
                if let reason = settle(hotExit, hotVerdict) { return .stop(reason) }
            case .other:
                return .general
            case .failed:
                // A failed entry is no exit (counted above to keep the test off the hot path).
                exits.store(exits.load(ordering: .relaxed) &- 1, ordering: .relaxed)
                return .stop(.error(failure ?? .closed("vCPU \(id)")))
            }
            if control.pending.load(ordering: .sequentiallyConsistent) { return .yield }
        }
    }

    /// Completes the exit (IN/read data back into `kvm_run`) or ends the loop.
    @inline(__always)
    private func settle(_ exit: VMExit, _ verdict: ExitVerdict) -> StopReason? {
        switch verdict {
        case .handled, .notMine, .backingReplaced:
            complete(exit)
            return nil
        case let .stop(reason):
            complete(exit)
            return reason
        case let .fail(message):
            return .handlerFailed(message)
        }
    }

    /// Waits for the loop (`start`'s thread or a `runLoop`) to end and returns why it
    /// stopped. Called on the vCPU's own thread (in a handler) it cannot wait for itself:
    /// it returns at once the stop reason requested (`.requested` if none).
    @discardableResult
    public func join() -> StopReason { control.join() }

    /// Asks the vCPU to stop; returns at once (use `join()` to wait). From a handler on
    /// the vCPU's own thread the loop ends once the handler returns.
    public func requestStop(_ reason: StopReason = .requested) {
        control.requestStop(reason, kick: kick)
    }

    /// Stops the vCPU and waits for its thread. From a handler on the vCPU's own thread
    /// it cannot wait: it returns `.requested` at once and the loop ends once the
    /// handler returns.
    @discardableResult
    public func stop() -> StopReason {
        requestStop(.requested)
        return join()
    }

    /// Asks every vCPU of `vcpus` to stop, then joins each: all are asked before any is
    /// waited for, so they stop together. What a run does with the vCPUs it started
    /// when it cannot go on.
    static func stopAll(_ vcpus: some Collection<VCPU>) {
        for vcpu in vcpus { vcpu.requestStop(.requested) }
        for vcpu in vcpus { vcpu.join() }
    }

    /// Parks the vCPU outside KVM_RUN and returns once it is parked; its state can then
    /// be read and written from this thread. Pauses nest: every `pause` needs its own
    /// `resume`, so a party that resumes cannot release a vCPU another party still holds.
    /// From a handler on the vCPU's own thread it cannot wait: it returns at once and
    /// the vCPU parks when the handler returns, until another thread resumes it (a
    /// `resume` in the same handler cancels it).
    public func pause() { control.pause(kick: kick) }

    /// Ends one `pause`; the vCPU runs again once no pause holds it.
    public func resume() { control.resume() }

    /// Pauses only a vCPU nobody else paused; true when this call did (VMSupervisor).
    func pauseIfRunning() -> Bool { control.pauseIfRunning(kick: kick) }

    public var isPaused: Bool { control.isPaused }
    public var isRunning: Bool { control.isRunning }

    /// A KVM vCPU whose VM closed it (cold: the loop asks only when a request is pending).
    private var isClosedKVM: Bool { (backend as? KVMBackend).map { $0.fd < 0 } ?? false }

    private func kick() {
        // Plain store into the shared page: the kernel reads it at entry.
        if fd >= 0 { ckvm_set_immediate_exit(runPage, 1) }
    }
}

/// How the hot loop dispatches a HLT (`VCPU.hotLoop`, specialised for each).
protocol HaltDispatch {
    func dispatch(_ hot: Unmanaged<FrozenTables>, _ exit: inout VMExit, _ vcpu: VCPU, _ verdict: inout ExitVerdict) -> FrozenTables.RangeAnswer
}

/// Through the kind table (`FrozenTables.dispatchHalt`): any handlers, closures included.
struct TableHalt: HaltDispatch {
    @inline(__always)
    func dispatch(_ hot: Unmanaged<FrozenTables>, _ exit: inout VMExit, _ vcpu: VCPU, _ verdict: inout ExitVerdict) -> FrozenTables.RangeAnswer {
        hot._withUnsafeGuaranteedRef { $0.dispatchHalt(&exit, vcpu, &verdict) }
    }
}

/// The one HLT handler, a closure (`FrozenTables.soleHalt`): no kind-table lookup.
struct ClosureHalt: HaltDispatch {
    let box: Unmanaged<KindHandlerBox>

    @inline(__always)
    func dispatch(_ hot: Unmanaged<FrozenTables>, _ exit: inout VMExit, _ vcpu: VCPU, _ verdict: inout ExitVerdict) -> FrozenTables.RangeAnswer {
        // The closure sees `exit` (inout): a HLT it must be, whatever the last exit left.
        if case .hlt = exit {} else { exit = .hlt }
        let answer = box._withUnsafeGuaranteedRef { $0.call(&exit, vcpu) }
        if case .handled = answer { return .handled }
        if case .notMine = answer { return .unclaimed }
        verdict = answer
        return .other
    }
}
