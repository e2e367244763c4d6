import Glibc
import VMMKit

/// Unassigned I/O as QEMU answers it: a read of a port no device claims returns
/// all-ones (its `unassigned_io_ops`, system/ioport.c), a read of an MMIO address 0 (its
/// memory core's `unassigned_mem_read`, system/memory.c: a PC's bus would give all-ones,
/// but guests written for QEMU see 0), a write is dropped. Registered as the last kind
/// handler for I/O and MMIO exits, so every device and plugin comes first. Each
/// address is counted per direction for `--stats`; `--trace exits` says which exits
/// it answered. `--strict-io` leaves it out: such an exit then stops the VM (status 18).
final class UnassignedIO: @unchecked Sendable {
    struct Key: Hashable, Comparable {
        let mmio: Bool
        let address: UInt64
        let write: Bool
        static func < (a: Key, b: Key) -> Bool { (a.mmio ? 1 : 0, a.address, a.write ? 1 : 0) < (b.mmio ? 1 : 0, b.address, b.write ? 1 : 0) }
    }

    /// Distinct addresses counted one by one; a guest sweeping more (an MMIO storm over
    /// the hole) is counted in `others`, so the table's memory stays bounded.
    static let maxAddresses = 1024
    /// The count of each address, and of the accesses past `maxAddresses` addresses.
    private struct Tally {
        var counts: [Key: Int] = [:]
        var others = 0
    }
    private let tally = Lock(Tally())
    private let trace: Bool

    init(trace: Bool) { self.trace = trace }

    func register(on dispatcher: ExitDispatcher) throws(VMMError) {
        try dispatcher.register(.io, priority: .min, owner: "unassigned I/O") { [self] exit, vcpu in
            guard case let .io(io) = exit else { return .notMine }
            if !io.isWrite {
                for i in 0..<io.data.count { io.data[i] = 0xff }
            }
            note(Key(mmio: false, address: UInt64(io.port), write: io.isWrite), vcpu)
            return .handled
        }
        try dispatcher.register(.mmio, priority: .min, owner: "unassigned MMIO") { [self] exit, vcpu in
            guard case var .mmio(access) = exit else { return .notMine }
            if !access.isWrite {
                access.data = 0
                exit = .mmio(access)
            }
            note(Key(mmio: true, address: access.address, write: access.isWrite), vcpu)
            return .handled
        }
    }

    private func note(_ key: Key, _ vcpu: VCPU) {
        tally.withLock { t in
            if t.counts.count < Self.maxAddresses || t.counts[key] != nil {
                t.counts[key, default: 0] += 1
            } else {
                t.others += 1
            }
        }
        if trace {
            let what = key.mmio ? "mmio gpa=\(hex(key.address))" : "port=\(hex(key.address))"
            ExitStats.err("unassigned vcpu\(vcpu.id) \(what) \(key.write ? "write dropped" : key.mmio ? "read as 0" : "read as all-ones")\n")
        }
    }

    /// One line per address for `--stats` (empty when nothing was unassigned).
    func report() -> String {
        let (sorted, rest) = tally.withLock { t in (t.counts.sorted { $0.key < $1.key }, t.others) }
        return sorted.map { key, count in
            "unassigned \(key.mmio ? "mmio" : "io") \(key.write ? "write" : "read") \(key.mmio ? "gpa" : "port")=\(hex(key.address)): \(count)\n"
        }.joined() + (rest > 0 ? "unassigned accesses at further addresses (past \(Self.maxAddresses)): \(rest)\n" : "")
    }
}
