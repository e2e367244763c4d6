/// Sees every exit a vCPU thread dispatches, before and after the handlers run: for
/// traces, statistics and recording. Called on the vCPU thread ([vcpu-thread]); several
/// vCPUs call it concurrently, so an implementation guards shared state.
public protocol ExitObserver: AnyObject {
    func willDispatch(_ exit: VMExit, on vcpu: VCPU)
    func didDispatch(_ exit: VMExit, verdict: ExitVerdict, on vcpu: VCPU)
    /// Whether `handled(by:_:on:)` should be called: the dispatcher then takes a slower
    /// path that knows each handler's owner (for traces; read when the observer is set).
    var observesHandlers: Bool { get }
    /// Called by the dispatcher with the owner of the handler whose verdict it took (a
    /// plugin's is "<id> '<handler name>' (<library path>)"; the default policy's is
    /// "default"), after the handler ran and before `didDispatch`.
    func handled(by owner: String, _ exit: VMExit, on vcpu: VCPU)
}

extension ExitObserver {
    public var observesHandlers: Bool { false }
    public func handled(by owner: String, _ exit: VMExit, on vcpu: VCPU) {}
}
