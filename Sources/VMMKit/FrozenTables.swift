/// An immutable copy of a dispatcher's range tables, taken when its first vCPU starts.
/// Dispatch reaches handlers through `let` properties of a borrowed reference, so no
/// retain/release of the handler list or of the handler closure is needed per exit
/// (on a mutable table the compiler must retain both around the call).
final class FrozenTables {
    let pio: AddressRangeTable<ExitDispatcher.PIOHandler>
    let mmio: AddressRangeTable<ExitDispatcher.MMIOHandler>

    init(pio: AddressRangeTable<ExitDispatcher.PIOHandler>, mmio: AddressRangeTable<ExitDispatcher.MMIOHandler>) {
        self.pio = pio
        self.mmio = mmio
    }

    /// The first verdict other than `.notMine` of the port handlers, or nil.
    @inline(__always)
    func dispatch(_ access: PIOAccess, _ vcpu: VCPU) -> ExitVerdict? {
        guard let s = pio.segmentIndex(UInt64(access.port)) else { return nil }
        for i in 0..<pio.segments[s].handlers.count {
            let verdict = pio.segments[s].handlers[i](access, vcpu)
            if case .notMine = verdict { continue }
            return verdict
        }
        return nil
    }

    /// The first verdict other than `.notMine` of the MMIO handlers, or nil.
    @inline(__always)
    func dispatch(_ access: inout MMIOAccess, _ vcpu: VCPU) -> ExitVerdict? {
        guard let s = mmio.segmentIndex(access.address) else { return nil }
        for i in 0..<mmio.segments[s].handlers.count {
            let verdict = mmio.segments[s].handlers[i](&access, vcpu)
            if case .notMine = verdict { continue }
            return verdict
        }
        return nil
    }
}
