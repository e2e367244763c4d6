extension VCPU {
    /// The stuck check (canary rule 4): the same memory fault `faultRepeatLimit` times in
    /// a row stops the vCPU; the handler is not called for that last one. Returns the
    /// stop reason, or nil to dispatch the fault.
    func checkRepeatedFault(_ fault: MemoryFault) -> StopReason? {
        // An un-annotated fault has no address: where it happens (RIP) is its identity.
        let rip = fault.annotated ? 0 : ((try? registers().rip) ?? 0)
        let key = VCPUCanary.FaultKey(gpa: fault.location?.gpa ?? 0, size: fault.location?.size ?? 0, flags: fault.flags,
                                      errno: fault.errno, rip: rip)
        let count = canary.countFault(key)
        guard count >= canary.faultRepeatLimit else { return nil }
        return .stuck(stuckDiagnosis(fault, times: count))
    }

    func stuckDiagnosis(_ fault: MemoryFault, times: Int) -> String {
        let rip = (try? registers().rip).map { hex($0) } ?? "unknown"
        let what = if let at = fault.location {
            "memory fault at guest-physical \(hex(at.gpa)) (\(at.size) bytes, flags \(hex(fault.flags)))"
        } else {
            "un-annotated memory fault (no address)"
        }
        return "vCPU \(id) at RIP \(rip): the same \(what), \(errnoName(fault.errno)), \(times) times in a row with no other exit in between; its handler did not resolve it"
            + ExitSummary.describe(canary.recentExits)
    }
}
