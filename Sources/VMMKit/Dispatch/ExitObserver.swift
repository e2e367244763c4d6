/// Sees every exit a vCPU thread dispatches, before and after the handlers run: for
/// traces, statistics and recording. Called on the vCPU thread ([vcpu-thread]); several
/// vCPUs call it concurrently, so an implementation guards shared state.
public protocol ExitObserver: AnyObject {
    func willDispatch(_ exit: VMExit, on vcpu: VCPU)
    func didDispatch(_ exit: VMExit, verdict: ExitVerdict, on vcpu: VCPU)
}
