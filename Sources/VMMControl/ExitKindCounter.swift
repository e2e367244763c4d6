import Synchronization
import VMMKit

/// Counts dispatched exits per vCPU and kind, readable from any thread while the vCPUs
/// run (the control API's metrics). Each vCPU writes only its own row, so an update is
/// a relaxed load and store, no read-modify-write; readers see each counter whole.
/// Another observer (the launcher's `--stats`/`--trace`) can be chained behind it.
public final class ExitKindCounter: ExitObserver, @unchecked Sendable {
    private static let kinds = VMExitKind.allCases
    private let vcpus: Int
    private let cells: UnsafeMutablePointer<Atomic<UInt64>>
    public let next: ExitObserver?

    /// `vcpus`: vCPU ids 0..<vcpus are counted (exits of other ids are passed on, not counted).
    public init(vcpus: Int, chaining next: ExitObserver? = nil) {
        self.vcpus = max(0, vcpus)
        self.next = next
        let n = self.vcpus * Self.kinds.count
        cells = .allocate(capacity: max(1, n))
        for i in 0..<n { (cells + i).initialize(to: Atomic(0)) }
    }

    deinit {
        cells.deinitialize(count: vcpus * Self.kinds.count)
        cells.deallocate()
    }

    public func willDispatch(_ exit: VMExit, on vcpu: VCPU) {
        let id = Int(vcpu.id)
        if id < vcpus, let k = Self.kinds.firstIndex(of: exit.kind) {
            let cell = cells + (id * Self.kinds.count + k)
            cell.pointee.store(cell.pointee.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
        }
        next?.willDispatch(exit, on: vcpu)
    }

    public func didDispatch(_ exit: VMExit, verdict: ExitVerdict, on vcpu: VCPU) {
        next?.didDispatch(exit, verdict: verdict, on: vcpu)
    }

    /// Exits of one kind dispatched on one vCPU so far.
    public func count(vcpu: Int, kind: VMExitKind) -> UInt64 {
        guard (0..<vcpus).contains(vcpu), let k = Self.kinds.firstIndex(of: kind) else { return 0 }
        return cells[vcpu * Self.kinds.count + k].load(ordering: .relaxed)
    }

    /// Totals over all vCPUs, kinds with no exit left out, in `VMExitKind` order.
    public func totals() -> [(kind: VMExitKind, count: UInt64)] {
        Self.kinds.compactMap { kind in
            let n = (0..<vcpus).reduce(UInt64(0)) { $0 &+ count(vcpu: $1, kind: kind) }
            return n == 0 ? nil : (kind, n)
        }
    }
}
