import Synchronization

/// The region table as guest-memory accesses see it: an immutable, sorted snapshot of
/// (start, end, host address) published through an atomic pointer, so an access from a
/// vCPU thread (a device handler reading a queue) takes no VM-wide lock and writes no
/// shared cache line. `GuestMemory` publishes a new snapshot under its table mutex
/// whenever a region is added or removed; retired snapshots are kept until the memory
/// is closed (regions change a handful of times per VM), so a reader that loaded an
/// old one never reads freed memory. As before, a host pointer stays valid only until
/// its region is removed.
final class RegionLookup: @unchecked Sendable {
    struct Entry {
        let start: UInt64
        let end: UInt64 // exclusive
        let host: UnsafeMutableRawPointer
    }

    private let current = Atomic<UnsafeMutablePointer<UnsafeMutableBufferPointer<Entry>>?>(nil)
    /// Every snapshot ever published (guarded by the owner's table mutex).
    private var published: [UnsafeMutablePointer<UnsafeMutableBufferPointer<Entry>>] = []

    deinit {
        for snapshot in published {
            snapshot.pointee.deallocate()
            snapshot.deallocate()
        }
    }

    /// Publishes `regions` (sorted by address). Call with the table mutex held.
    func publish(_ regions: [MemoryRegion]) {
        let entries = UnsafeMutableBufferPointer<Entry>.allocate(capacity: regions.count)
        for (i, r) in regions.enumerated() {
            entries.initializeElement(at: i, to: Entry(start: r.guestAddress, end: r.guestAddress &+ r.size, host: r.hostAddress))
        }
        let snapshot = UnsafeMutablePointer<UnsafeMutableBufferPointer<Entry>>.allocate(capacity: 1)
        snapshot.initialize(to: entries)
        published.append(snapshot)
        current.store(snapshot, ordering: .releasing)
    }

    /// The host address of [gpa, gpa+length) if it lies in one region, by binary search.
    @inline(__always)
    func hostAddress(_ gpa: UInt64, length: Int) -> UnsafeMutableRawPointer? {
        guard length >= 0, let snapshot = current.load(ordering: .acquiring) else { return nil }
        let table = snapshot.pointee
        var lo = 0, hi = table.count
        while lo < hi {
            let mid = (lo &+ hi) >> 1
            if table[mid].end <= gpa { lo = mid &+ 1 } else { hi = mid }
        }
        guard lo < table.count else { return nil }
        let e = table[lo]
        guard e.start <= gpa, UInt64(length) <= e.end - gpa else { return nil }
        return e.host + Int(gpa - e.start)
    }
}
