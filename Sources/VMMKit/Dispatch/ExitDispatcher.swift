import Synchronization

/// Routes each decoded exit to the handlers registered for it, in priority order, and
/// applies the documented default when nobody claims it.
///
/// PIO and MMIO handlers are registered by address range, all other exits by kind.
/// Register everything before the vCPUs start: the tables are then frozen and read
/// without locks on every exit (registration afterwards throws).
///
/// Defaults for unclaimed exits: HLT stops the vCPU as `.halted`, a triple fault as
/// `.shutdown`, internal errors and failed entries with their details; every other
/// exit (I/O, MMIO, MSR, debug, hypercall, memory fault, unknown) stops the vCPU with
/// `.unhandled`, naming the exit, RIP and the address.
public final class ExitDispatcher: @unchecked Sendable {
    public typealias PIOHandler = (PIOAccess, VCPU) -> ExitVerdict
    public typealias MMIOHandler = (inout MMIOAccess, VCPU) -> ExitVerdict
    public typealias Handler = (inout VMExit, VCPU) -> ExitVerdict

    private(set) var pio = AddressRangeTable<PIOHandlerBox>()
    private(set) var mmio = AddressRangeTable<MMIOHandlerBox>()
    private(set) var byKind: [[KindHandlerBox]] = Array(repeating: [], count: VMExitKind.allCases.count)
    private let frozen = Atomic<Bool>(false)
    /// Optional tap on every exit the run loop dispatches (set before the vCPUs start).
    public private(set) var observer: ExitObserver?
    /// The observer wants to know which handler took each exit (ExitDispatcher+Tracing):
    /// then `freeze()` installs no frozen tables, so the fast path stays as it was.
    private(set) var namesHandlers = false

    public init() {}

    public func setObserver(_ observer: ExitObserver?) throws(VMMError) {
        try checkMutable("exit observer")
        self.observer = observer
        namesHandlers = observer?.observesHandlers ?? false
    }

    /// Registers a port range [port, port+count).
    public func registerPIO(port: UInt16, count: UInt16 = 1, priority: Int32 = 0, exclusive: Bool = true,
                            owner: String, _ handler: @escaping PIOHandler) throws(VMMError) {
        try registerPIO(port: port, count: count, priority: priority, exclusive: exclusive, owner: owner,
                        plugin: .none, info: nil, handler)
    }

    /// `registerPIO` for a plugin's handler: `handler` is its closure, `plugin` the C
    /// entry the hot path calls instead (`PluginHotCall`); both behave the same.
    func registerPIO(port: UInt16, count: UInt16, priority: Int32, exclusive: Bool, owner: String,
                     plugin: PluginEntry, info: HandlerInfo?, _ handler: @escaping PIOHandler) throws(VMMError) {
        try checkMutable(owner)
        guard UInt32(port) + UInt32(count) <= 0x10000 else {
            throw .invalidArgument("\(owner): port range \(hex(port))+\(count) runs past port 0xffff")
        }
        try pio.insert(start: UInt64(port), length: UInt64(count), priority: priority, exclusive: exclusive,
                       owner: owner, unit: "port", plugin: plugin, info: info, handler: handler)
    }

    /// The owner of a handler registered for a port of [port, port+count), if any: for a
    /// VMM that fills in defaults around what plugins claimed.
    public func pioOwner(port: UInt16, count: UInt16 = 1) -> String? {
        pio.clash(start: UInt64(port), end: UInt64(port) + UInt64(count), exclusive: true)?.owner
    }

    /// The owner of a handler registered for an address of [address, address+length), if
    /// any (`pioOwner`'s twin); nil for an empty or wrapping range.
    public func mmioOwner(address: UInt64, length: UInt64) -> String? {
        let (end, overflow) = address.addingReportingOverflow(length)
        guard length > 0, !overflow else { return nil }
        return mmio.clash(start: address, end: end, exclusive: true)?.owner
    }

    /// Registers a guest-physical MMIO range [address, address+length).
    public func registerMMIO(address: UInt64, length: UInt64, priority: Int32 = 0, exclusive: Bool = true,
                             owner: String, _ handler: @escaping MMIOHandler) throws(VMMError) {
        try registerMMIO(address: address, length: length, priority: priority, exclusive: exclusive, owner: owner,
                         plugin: .none, info: nil, handler)
    }

    func registerMMIO(address: UInt64, length: UInt64, priority: Int32, exclusive: Bool, owner: String,
                      plugin: PluginEntry, info: HandlerInfo?, _ handler: @escaping MMIOHandler) throws(VMMError) {
        try checkMutable(owner)
        try mmio.insert(start: address, length: length, priority: priority, exclusive: exclusive,
                        owner: owner, unit: "MMIO", plugin: plugin, info: info, handler: handler)
    }

    /// Registers a handler for every exit of one kind (for I/O and MMIO: after the range
    /// handlers, before the default).
    public func register(_ kind: VMExitKind, priority: Int32 = 0, owner: String, _ handler: @escaping Handler) throws(VMMError) {
        try register(kind, priority: priority, owner: owner, plugin: .none, info: nil, handler)
    }

    /// `register` for a plugin's handler, with the C entry the hot path calls (HLT only).
    func register(_ kind: VMExitKind, priority: Int32, owner: String, plugin: PluginEntry, info: HandlerInfo?,
                  _ handler: @escaping Handler) throws(VMMError) {
        try checkMutable(owner)
        let index = VMExitKind.allCases.firstIndex(of: kind)!
        byKind[index].append(KindHandlerBox(priority: priority, owner: owner, plugin: plugin, info: info, handler))
        byKind[index].sort { $0.priority > $1.priority }
    }

    private func checkMutable(_ owner: String) throws(VMMError) {
        if frozen.load(ordering: .acquiring) {
            throw .invalidArgument("\(owner): handlers must be registered before the vCPUs start")
        }
    }

    /// Ends registration and switches dispatch to the frozen tables (no locks, no
    /// retain/release per exit). `VCPU.start`/`runLoop` do this; call it yourself only
    /// when dispatching exits without a vCPU loop (benchmarks, replay tools).
    public func freeze() {
        freezeLock.withLock { _ in
            // An observer naming handlers reads the live tables (which keep the owners).
            guard snapshotOwner == nil, !namesHandlers else { return }
            let tables = FrozenTables(pio: pio, mmio: mmio, byKind: byKind)
            snapshotOwner = tables
            snapshot.store(UnsafeRawPointer(Unmanaged.passUnretained(tables).toOpaque()), ordering: .releasing)
        }
        frozen.store(true, ordering: .releasing)
    }

    // The range tables as the vCPUs see them, fixed at the first start (FrozenTables).
    private let freezeLock = Lock<Void>(())
    private var snapshotOwner: FrozenTables?
    private let snapshot = Atomic<UnsafeRawPointer?>(nil)

    /// The frozen tables, borrowed (nil before `freeze()`): the run loop's hot path
    /// dispatches PIO and MMIO exits through them directly (`VCPU+HotPath.swift`).
    var frozenTables: Unmanaged<FrozenTables>? {
        snapshot.load(ordering: .acquiring).map { Unmanaged<FrozenTables>.fromOpaque($0) }
    }

    /// Whether a vCPU has started with this dispatcher (registration is then closed).
    var isFrozen: Bool { frozen.load(ordering: .acquiring) }

    /// Dispatches one exit. Never returns `.notMine`: the default applies instead.
    /// Before `freeze()` each call builds the range segments anew, cheap for a few
    /// ranges: code that dispatches many exits without a vCPU loop freezes first.
    public func dispatch(_ exit: inout VMExit, on vcpu: VCPU) -> ExitVerdict {
        if let raw = snapshot.load(ordering: .acquiring) {
            let tables = Unmanaged<FrozenTables>.fromOpaque(raw)
            switch exit {
            case let .io(access):
                if let verdict = tables._withUnsafeGuaranteedRef({ $0.dispatch(access, vcpu) }) { return verdict }
            case var .mmio(access):
                if let verdict = tables._withUnsafeGuaranteedRef({ $0.dispatch(&access, vcpu) }) {
                    exit = .mmio(access)
                    return verdict
                }
            default:
                break
            }
            return tables._withUnsafeGuaranteedRef { $0.dispatchByKind(&exit, vcpu) }
        }
        if namesHandlers { return dispatchNamingHandler(&exit, on: vcpu) }
        switch exit {
        case let .io(access):
            if let handlers = pio.lookup(UInt64(access.port)) {
                for handler in handlers {
                    let verdict = handler.call(access, vcpu)
                    if case .notMine = verdict { continue }
                    return verdict
                }
            }
        case var .mmio(access):
            if let handlers = mmio.lookup(access.address) {
                for handler in handlers {
                    let verdict = handler.call(&access, vcpu)
                    if case .notMine = verdict { continue }
                    exit = .mmio(access)
                    return verdict
                }
            }
        default:
            break
        }
        return dispatchByKind(&exit, on: vcpu)
    }

    private func dispatchByKind(_ exit: inout VMExit, on vcpu: VCPU) -> ExitVerdict {
        dispatchByKindFindingEntry(&exit, on: vcpu).verdict
    }

    /// The kind handlers, then the default; `entry` is the index in `byKind[exit.kindIndex]`
    /// of the handler that answered (nil: the rules or the default did).
    func dispatchByKindFindingEntry(_ exit: inout VMExit, on vcpu: VCPU) -> (verdict: ExitVerdict, entry: Int?) {
        // Memory faults: invariants before any handler, poison rules after (MemoryFaultRules).
        if case let .memoryFault(fault) = exit, let refusal = MemoryFaultRules.refuse(fault, vcpu) { return (refusal, nil) }
        for (index, entry) in byKind[exit.kindIndex].enumerated() {
            let verdict = entry.call(&exit, vcpu)
            if case .notMine = verdict { continue }
            if case let .memoryFault(fault) = exit { return (MemoryFaultRules.settle(fault, verdict, vcpu), index) }
            return (verdict, index)
        }
        return (Self.defaultVerdict(exit, vcpu: vcpu), nil)
    }

    static func defaultVerdict(_ exit: VMExit, vcpu: VCPU) -> ExitVerdict {
        let rip = (try? vcpu.registers().rip) ?? 0
        let at = "vCPU \(vcpu.id) at RIP \(hex(rip))"
        switch exit {
        case .hlt: return .stop(.halted)
        case .shutdown: return .stop(.shutdown)
        case .interrupted, .irqWindowOpen: return .handled
        case let .internalError(error): return .stop(.internalError(error, rip: rip))
        case let .failEntry(reason, _): return .stop(.failEntry(hardwareReason: reason))
        case let .io(a):
            let what = a.isWrite ? "write of \(hex(a.value))" : "read"
            return .stop(.unhandled("unhandled PIO \(what) (\(a.size) byte\(a.size == 1 ? "" : "s") x\(a.count)) at port \(hex(a.port)), \(at)"))
        case let .mmio(a):
            let what = a.isWrite ? "write of \(hex(a.data))" : "read"
            return .stop(.unhandled("unhandled MMIO \(what) (\(a.length) bytes) at guest-physical \(hex(a.address)), \(at)"))
        case let .rdmsr(m): return .stop(.unhandled("unhandled RDMSR of MSR \(hex(m.index)), \(at)"))
        case let .wrmsr(m): return .stop(.unhandled("unhandled WRMSR of \(hex(m.data)) to MSR \(hex(m.index)), \(at)"))
        case let .debug(d): return .stop(.unhandled("unhandled debug exit (exception \(d.exception), pc \(hex(d.pc))), \(at)"))
        case let .hypercall(h): return .stop(.unhandled("unhandled hypercall \(h.number), \(at)"))
        case let .systemEvent(type, _): return .stop(.unhandled("unhandled system event \(type), \(at)"))
        case let .memoryFault(f): return MemoryFaultRules.unresolved(f, at: at, vcpu)
        case let .unknown(reason): return .stop(.unhandled("unknown exit reason \(reason), \(at)"))
        }
    }
}

extension VMExit {
    @inline(__always)
    var kindIndex: Int {
        switch self {
        case .io: 0
        case .mmio: 1
        case .hlt: 2
        case .shutdown: 3
        case .debug: 4
        case .hypercall: 5
        case .rdmsr: 6
        case .wrmsr: 7
        case .internalError: 8
        case .failEntry: 9
        case .systemEvent: 10
        case .memoryFault: 11
        case .irqWindowOpen: 12
        case .interrupted: 13
        case .unknown: 14
        }
    }
}
