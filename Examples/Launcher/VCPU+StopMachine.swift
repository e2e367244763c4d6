import VMMKit

extension VCPU {
    /// A built-in device's end of the machine (debug-exit, a reset, a power-off): every
    /// vCPU stops with `reason`, this one with the verdict returned.
    func stopMachine(_ reason: StopReason) -> ExitVerdict {
        requestVMStop(reason)
        return .stop(reason)
    }
}
