extension ExitDispatcher {
    /// `dispatch` for an observer that wants each exit's handler named
    /// (`ExitObserver.observesHandlers`): the same order and verdicts, through the live
    /// tables, which keep every handler's owner. Slower (allocates per exit); used only
    /// for traces, never on the default path.
    func dispatchNamingHandler(_ exit: inout VMExit, on vcpu: VCPU) -> ExitVerdict {
        let (verdict, owner) = dispatchFindingOwner(&exit, on: vcpu)
        observer?.handled(by: owner, exit, on: vcpu)
        return verdict
    }

    private func dispatchFindingOwner(_ exit: inout VMExit, on vcpu: VCPU) -> (ExitVerdict, String) {
        switch exit {
        case let .io(access):
            for entry in pio.covering(UInt64(access.port)) {
                let verdict = entry.handler.call(access, vcpu)
                if case .notMine = verdict { continue }
                return (verdict, entry.owner)
            }
        case var .mmio(access):
            for entry in mmio.covering(access.address) {
                let verdict = entry.handler.call(&access, vcpu)
                if case .notMine = verdict { continue }
                exit = .mmio(access)
                return (verdict, entry.owner)
            }
        default:
            break
        }
        // The same kind dispatch (and memory-fault rules) as the untraced path.
        let (verdict, entry) = dispatchByKindFindingEntry(&exit, on: vcpu)
        return (verdict, entry.map { byKind[exit.kindIndex][$0].owner } ?? "default")
    }
}
