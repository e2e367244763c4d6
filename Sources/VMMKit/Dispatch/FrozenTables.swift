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

    /// A handler behind an unmanaged reference: calling a `let` closure of a borrowed
    /// object needs no retain of the closure's context.
    final class Box<Handler> {
        let call: Handler
        init(_ call: Handler) { self.call = call }
    }

    /// One table (ports or MMIO), flattened.
    struct Table<Handler> {
        let segments: UnsafeMutableBufferPointer<Segment>
        let handlers: UnsafeMutableBufferPointer<Unmanaged<Box<Handler>>>

        init(_ table: AddressRangeTable<Handler>) {
            let all = table.segments.flatMap(\.handlers).map { Unmanaged.passRetained(Box($0)) }
            handlers = .allocate(capacity: all.count)
            _ = handlers.initialize(from: all)
            segments = .allocate(capacity: table.segments.count)
            var first = 0
            for (i, s) in table.segments.enumerated() {
                segments.initializeElement(at: i, to: Segment(start: s.start, end: s.end, first: first, count: s.handlers.count))
                first += s.handlers.count
            }
        }

        func release() {
            segments.deallocate()
            handlers.forEach { $0.release() }
            handlers.deallocate()
        }

        /// The segment containing `address`, by binary search.
        @inline(__always)
        func segment(_ address: UInt64) -> Segment? {
            segments.indexContaining(address).map { segments[$0] }
        }
    }

    let pio: Table<ExitDispatcher.PIOHandler>
    let mmio: Table<ExitDispatcher.MMIOHandler>

    init(pio: AddressRangeTable<ExitDispatcher.PIOHandler>, mmio: AddressRangeTable<ExitDispatcher.MMIOHandler>) {
        self.pio = Table(pio)
        self.mmio = Table(mmio)
    }

    deinit {
        pio.release()
        mmio.release()
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
