/// An immutable, flat copy of a dispatcher's range tables, taken when its first vCPU
/// starts. Segments and handlers live in plain buffers reached through a borrowed
/// reference, so dispatch retains neither the handler list nor the handler closure
/// per exit (through the live, mutable tables the compiler must retain both).
final class FrozenTables {
    struct Segment: AddressSegment {
        let start: UInt64
        let end: UInt64
        let first: Int // index of its first handler in `handlers`
        let count: Int
    }

    /// One table (ports or MMIO), flattened. Handlers are boxes (`PIOHandlerBox`) held
    /// unmanaged: calling a `let` closure of a borrowed object needs no retain.
    struct Table<Box: AnyObject> {
        let segments: UnsafeMutableBufferPointer<Segment>
        let handlers: UnsafeMutableBufferPointer<Unmanaged<Box>>

        init(_ table: AddressRangeTable<Box>) {
            // Only segments with handlers: the hot dispatch loops test for the end after
            // their first handler, not before it.
            let kept = table.segments.filter { !$0.handlers.isEmpty }
            let all = kept.flatMap(\.handlers).map { Unmanaged.passRetained($0) }
            handlers = .allocateIsolated(capacity: all.count)
            _ = handlers.initialize(from: all)
            // At least one segment, so the scan below tests for the end after the first:
            // an empty table holds one that ends at 0, which no address is below.
            segments = .allocateIsolated(capacity: max(kept.count, 1))
            if kept.isEmpty { segments.initializeElement(at: 0, to: Segment(start: 0, end: 0, first: 0, count: 0)) }
            var first = 0
            for (i, s) in kept.enumerated() {
                segments.initializeElement(at: i, to: Segment(start: s.start, end: s.end, first: first, count: s.handlers.count))
                first += s.handlers.count
            }
        }

        func release() {
            segments.deallocate()
            handlers.forEach { $0.release() }
            handlers.deallocate()
        }

        /// The segment containing `address`: a linear scan over a few segments (one or
        /// two compares each, ~10 instructions for the first, against ~25 for a binary
        /// search's setup and steps), a binary search over more. Never the empty
        /// table's placeholder (it ends at 0).
        @inline(__always)
        func segment(_ address: UInt64) -> Segment? {
            let n = segments.count
            guard n <= 4 else { return segments.indexContaining(address).map { segments[$0] } }
            var i = 0
            repeat {
                let s = segments[i]
                if address < s.end { return address >= s.start ? s : nil }
                i &+= 1
            } while i < n
            return nil
        }
    }

    /// Read by every vCPU on every exit, as are the tables' buffers: lines of their own
    /// (CacheLinePad), so that no vCPU thread's writes share one with them.
    private let padBefore = CacheLinePad()
    let pio: Table<PIOHandlerBox>
    let mmio: Table<MMIOHandlerBox>
    /// Handlers by exit kind (`VMExit.kindIndex`), each list in priority order: kind k's
    /// handlers are `kindHandlers[kindStart[k]..<kindStart[k + 1]]`.
    let kindStart: UnsafeMutableBufferPointer<Int>
    let kindHandlers: UnsafeMutableBufferPointer<Unmanaged<KindHandlerBox>>
    /// The HLT handler when there is exactly one, else nil: a plugin's runs the hot loop's
    /// `PluginHalt`, a closure `ClosureHalt`.
    let soleHalt: Unmanaged<KindHandlerBox>?
    private let padAfter = CacheLinePad()

    init(pio: AddressRangeTable<PIOHandlerBox>, mmio: AddressRangeTable<MMIOHandlerBox>, byKind: [[KindHandlerBox]]) {
        self.pio = Table(pio)
        self.mmio = Table(mmio)
        kindStart = .allocateIsolated(capacity: byKind.count + 1)
        kindHandlers = .allocateIsolated(capacity: byKind.reduce(0) { $0 + $1.count })
        var next = 0
        for (k, list) in byKind.enumerated() {
            kindStart.initializeElement(at: k, to: next)
            for box in list {
                kindHandlers.initializeElement(at: next, to: .passRetained(box))
                next += 1
            }
        }
        kindStart.initializeElement(at: byKind.count, to: next)
        let k = VMExit.hlt.kindIndex
        let halts = byKind.indices.contains(k) ? byKind[k] : []
        soleHalt = halts.count == 1 ? .passUnretained(halts[0]) : nil
    }

    deinit {
        pio.release()
        mmio.release()
        kindHandlers.forEach { $0.release() }
        kindHandlers.deallocate()
        kindStart.deallocate()
    }

    /// The kind handlers in priority order, then the default: no lock, no retain.
    @inline(__always)
    func dispatchByKind(_ exit: inout VMExit, _ vcpu: VCPU) -> ExitVerdict {
        // Memory faults: invariants before any handler, poison rules after (MemoryFaultRules),
        // exactly as the live tables apply them.
        if case let .memoryFault(fault) = exit, let refusal = MemoryFaultRules.refuse(fault, vcpu) { return refusal }
        let k = exit.kindIndex
        for i in kindStart[k]..<kindStart[k &+ 1] {
            let verdict = kindHandlers[i]._withUnsafeGuaranteedRef { $0.call(&exit, vcpu) }
            if case .notMine = verdict { continue }
            if case let .memoryFault(fault) = exit { return MemoryFaultRules.settle(fault, verdict, vcpu) }
            return verdict
        }
        return ExitDispatcher.defaultVerdict(exit, vcpu: vcpu)
    }

    /// A HLT: its kind handlers, then the default. `.handled`: go on; `.unclaimed`: the
    /// default, `.stop(.halted)` (as `ExitDispatcher.defaultVerdict` answers, without
    /// reading registers for a message it does not print); `.other`: a handler's answer
    /// is in `verdict`. `exit` is made `.hlt` only when a closure handler is there to see it.
    @inline(__always)
    func dispatchHalt(_ exit: inout VMExit, _ vcpu: VCPU, _ verdict: inout ExitVerdict) -> RangeAnswer {
        let k = VMExit.hlt.kindIndex
        let (first, end) = (kindStart[k], kindStart[k &+ 1])
        guard first < end else { return .unclaimed }
        var i = first
        repeat {
            let box = kindHandlers[i]
            i &+= 1
            if let fn = box._withUnsafeGuaranteedRef({ $0.plugin.fn }) {
                // A plugin's handler: its C entry directly (PluginHotCall).
                switch PluginHotCall.hlt(box, fn, vcpu, &verdict) {
                case .handled: return .handled
                case .next: continue
                case .other: return .other
                }
            }
            // Only a closure sees `exit`: testing the enum costs ~15 instructions a HLT.
            if case .hlt = exit {} else { exit = .hlt }
            let answer = box._withUnsafeGuaranteedRef { $0.call(&exit, vcpu) }
            if case .handled = answer { return .handled }
            if case .notMine = answer { continue }
            verdict = answer
            return .other
        } while i < end
        return .unclaimed
    }

    /// The first verdict other than `.notMine` of the port handlers, or nil.
    @inline(__always)
    func dispatch(_ access: PIOAccess, _ vcpu: VCPU) -> ExitVerdict? {
        guard let s = pio.segment(UInt64(access.port)) else { return nil }
        for i in s.first..<(s.first &+ s.count) {
            let verdict = pio.handlers[i]._withUnsafeGuaranteedRef { $0.call(access, vcpu) }
            if case .notMine = verdict { continue }
            return verdict
        }
        return nil
    }

    /// The run loop's hot path: like `dispatch`, with the common answer (`.handled`)
    /// as a one-byte result and any other verdict written to `verdict`, so that no
    /// `ExitVerdict` is copied or destroyed per exit. Static, on the table the caller
    /// read out of the borrowed `FrozenTables`: called inside a closure given to
    /// `_withUnsafeGuaranteedRef`, this body stayed a function of its own (one more
    /// call layer per exit).
    @inline(__always)
    static func dispatchHot(_ pio: Table<PIOHandlerBox>, _ access: inout PIOAccess, _ vcpu: VCPU,
                            _ verdict: inout ExitVerdict) -> RangeAnswer {
        guard let s = pio.segment(UInt64(access.port)) else { return .unclaimed }
        if s.count == 1 {
            // The usual segment: one handler, called with no loop around it (whose
            // index, end and hoisted values were kept across the call, spilled: -8 to
            // -15 instructions per exit, callgrind). The loop below is for shared ones.
            // Written out rather than through a shared per-handler function as MMIO's
            // is: for ports that cost a plugin's exit 8-9 instructions (callgrind).
            let box = pio.handlers[s.first]
            if let fn = box._withUnsafeGuaranteedRef({ $0.plugin.fn }) {
                switch PluginHotCall.pio(box, fn, access, vcpu, &verdict) {
                case .handled: return .handled
                case .next: return .unclaimed
                case .other: return .other
                }
            }
            // `.handled` tested first, alone: a switch over the one-word verdict tested
            // the boxed cases first (8 instructions to reach `.handled`). The shared
            // segments' loop below keeps its switch: there the tests in this order cost
            // a plugin's exit 2 more (register allocation; callgrind).
            let answer = box._withUnsafeGuaranteedRef { $0.call(access, vcpu) }
            if case .handled = answer { return .handled }
            if case .notMine = answer { return .unclaimed }
            verdict = answer
            return .other
        }
        // Every segment `segment(_:)` returns has a handler (init; the empty table's
        // placeholder is never returned): the end is tested after the first.
        // No Range: it would check first <= end (a trap) on every exit.
        var i = s.first
        let end = s.first &+ s.count
        repeat {
            let box = pio.handlers[i]
            i &+= 1
            if let fn = box._withUnsafeGuaranteedRef({ $0.plugin.fn }) {
                // A plugin's handler: its C entry directly, no closure or verdict value.
                switch PluginHotCall.pio(box, fn, access, vcpu, &verdict) {
                case .handled: return .handled
                case .next: continue
                case .other: return .other
                }
            }
            switch box._withUnsafeGuaranteedRef({ $0.call(access, vcpu) }) {
            case .handled: return .handled
            case .notMine: continue
            case let other: verdict = other; return .other
            }
        } while i < end
        return .unclaimed
    }

    @inline(__always)
    static func dispatchHot(_ mmio: Table<MMIOHandlerBox>, _ access: inout MMIOAccess, _ vcpu: VCPU,
                            _ verdict: inout ExitVerdict) -> RangeAnswer {
        guard let s = mmio.segment(access.address) else { return .unclaimed }
        // One handler: no loop around the call (as for ports).
        if s.count == 1 { return RangeAnswer(call(mmio.handlers[s.first], &access, vcpu, &verdict)) }
        // A shared segment (tested for its end after the first handler, as for ports).
        var i = s.first
        let end = s.first &+ s.count
        repeat {
            let box = mmio.handlers[i]
            i &+= 1
            switch call(box, &access, vcpu, &verdict) {
            case .handled: return .handled
            case .next: continue
            case .other: return .other
            }
        } while i < end
        return .unclaimed
    }

    /// One MMIO handler: a plugin's C entry directly (no closure or verdict value), else
    /// its closure, whose verdict other than handled / not mine goes to `verdict`.
    @inline(__always)
    private static func call(_ box: Unmanaged<MMIOHandlerBox>, _ access: inout MMIOAccess, _ vcpu: VCPU,
                             _ verdict: inout ExitVerdict) -> RangeStep {
        if let fn = box._withUnsafeGuaranteedRef({ $0.plugin.fn }) {
            return PluginHotCall.mmio(box, fn, &access, vcpu, &verdict)
        }
        let answer = box._withUnsafeGuaranteedRef { $0.call(&access, vcpu) }
        if case .handled = answer { return .handled }
        if case .notMine = answer { return .next }
        verdict = answer
        return .other
    }

    enum RangeAnswer {
        case handled, unclaimed, other

        /// A segment's only handler's step: declined means nobody claimed the exit.
        @inline(__always)
        init(_ step: RangeStep) {
            switch step {
            case .handled: self = .handled
            case .next: self = .unclaimed
            case .other: self = .other
            }
        }
    }

    /// The first verdict other than `.notMine` of the MMIO handlers, or nil.
    @inline(__always)
    func dispatch(_ access: inout MMIOAccess, _ vcpu: VCPU) -> ExitVerdict? {
        guard let s = mmio.segment(access.address) else { return nil }
        for i in s.first..<(s.first &+ s.count) {
            let verdict = mmio.handlers[i]._withUnsafeGuaranteedRef { $0.call(&access, vcpu) }
            if case .notMine = verdict { continue }
            return verdict
        }
        return nil
    }
}

/// A registered handler in a class of its own type: a closure kept in a generic
/// container (`AddressRangeTable<Handler>`) is stored at the most general abstraction
/// and called through two reabstraction thunks on every exit; in a concrete class it
/// is called directly.
///
/// A plugin's handler also carries its C entry (`plugin`): the run loop's hot path calls
/// that directly (`PluginHotCall`), every other path the closure, which does the same.
final class PIOHandlerBox {
    let call: ExitDispatcher.PIOHandler
    let plugin: PluginEntry
    /// The plugin handler's owner, for failure messages (nil for closures).
    let info: HandlerInfo?
    init(_ call: @escaping ExitDispatcher.PIOHandler, plugin: PluginEntry = .none, info: HandlerInfo? = nil) {
        self.call = call
        self.plugin = plugin
        self.info = info
    }
}

/// A handler for every exit of one kind, with its priority.
final class KindHandlerBox {
    let priority: Int32
    /// Who registered it, for traces (`ExitObserver.observesHandlers`).
    let owner: String
    let call: ExitDispatcher.Handler
    /// Set for a plugin's HLT handler (`FrozenTables.dispatchHalt`).
    let plugin: PluginEntry
    let info: HandlerInfo?
    init(priority: Int32, owner: String, plugin: PluginEntry = .none, info: HandlerInfo? = nil,
         _ call: @escaping ExitDispatcher.Handler) {
        self.priority = priority
        self.owner = owner
        self.call = call
        self.plugin = plugin
        self.info = info
    }
}

final class MMIOHandlerBox {
    let call: ExitDispatcher.MMIOHandler
    let plugin: PluginEntry
    let info: HandlerInfo?
    init(_ call: @escaping ExitDispatcher.MMIOHandler, plugin: PluginEntry = .none, info: HandlerInfo? = nil) {
        self.call = call
        self.plugin = plugin
        self.info = info
    }
}

extension AddressRangeTable where Handler == PIOHandlerBox {
    mutating func insert(start: UInt64, length: UInt64, priority: Int32, exclusive: Bool, owner: String,
                         unit: String, plugin: PluginEntry = .none, info: HandlerInfo? = nil,
                         handler: @escaping ExitDispatcher.PIOHandler) throws(VMMError) {
        try insert(start: start, length: length, priority: priority, exclusive: exclusive, owner: owner, unit: unit,
                   handler: PIOHandlerBox(handler, plugin: plugin, info: info))
    }
}

extension AddressRangeTable where Handler == MMIOHandlerBox {
    mutating func insert(start: UInt64, length: UInt64, priority: Int32, exclusive: Bool, owner: String,
                         unit: String, plugin: PluginEntry = .none, info: HandlerInfo? = nil,
                         handler: @escaping ExitDispatcher.MMIOHandler) throws(VMMError) {
        try insert(start: start, length: length, priority: priority, exclusive: exclusive, owner: owner, unit: unit,
                   handler: MMIOHandlerBox(handler, plugin: plugin, info: info))
    }
}
