/// What a snapshot keeps of one vCPU's state machine (`AsyncPFVCPUState.saved` and
/// `restore(_:)`). Statistics are not saved: they count this process's events.
public struct AsyncPFSavedState: Sendable {
    public var enableValue: UInt64 = 0
    public var vector: UInt8?
    public var inFlight: (token: UInt32, page: UInt64)?
    public var outstanding: [UInt32: UInt64] = [:]
    public var readyPending: UInt32?
    public var readyQueue: [UInt32] = []
    public var deferredPageFault: (address: UInt64, errorCode: UInt32)?
    public var deferredNMI = false
    public var haltedOn: UInt64?
    public var conflictExits = 0
    public var nextID: UInt32 = 1
    public init() {}
}

extension AsyncPFSavedState {
    /// Why vCPU `vcpu` could not have left this state, or nil: what its MSR writes are
    /// refused for, more tokens waiting than `tokensInUseLimit`, tokens its `makeToken`
    /// never makes (0, the wake-all token, or low 12 bits other than the vCPU id) or one
    /// token in two places. A snapshot's blob is hostile input: restore refuses what the
    /// guest's own writes would have been refused.
    public func problem(vcpu: UInt32) -> String? {
        if let vector, vector < 32 { return "MSR_KVM_ASYNC_PF_INT vector \(vector) is an exception vector" }
        if enableValue & AsyncPFABI.reservedEnableBits != 0 {
            return "MSR_KVM_ASYNC_PF_EN \(hex(enableValue)) has reserved bits 5:4 set"
        }
        if enableValue & AsyncPFABI.deliveryAsPFVMExit != 0 {
            return "MSR_KVM_ASYNC_PF_EN \(hex(enableValue)) asks for delivery as #PF vmexit, which is not offered"
        }
        if enableValue & AsyncPFABI.deliveryAsInterrupt != 0, vector == nil {
            return "MSR_KVM_ASYNC_PF_EN \(hex(enableValue)) enables interrupt delivery with no vector set"
        }
        let waiting = outstanding.count + readyQueue.count
        if waiting > AsyncPFVCPUState.tokensInUseLimit {
            return "\(waiting) tokens wait (outstanding or queued as ready), more than the \(AsyncPFVCPUState.tokensInUseLimit) a vCPU has at once"
        }
        // A token moves from outstanding to the ready queue to pending, so it is in one of
        // them at most (the "not present" in flight may name any of them).
        let tokens = outstanding.keys.sorted() + readyQueue + (readyPending.map { [$0] } ?? [])
        for token in tokens + (inFlight.map { [$0.token] } ?? []) where token == 0 || token == AsyncPFABI.wakeAllToken || token & 0xfff != vcpu & 0xfff {
            return "token \(hex(token)) is not one this vCPU makes (not 0 or 0xffffffff, its low 12 bits \(hex(vcpu & 0xfff)))"
        }
        var seen = Set<UInt32>()
        if let twice = tokens.first(where: { !seen.insert($0).inserted }) {
            return "token \(hex(twice)) is in two places (outstanding, the ready queue, the pending ready)"
        }
        return nil
    }
}
