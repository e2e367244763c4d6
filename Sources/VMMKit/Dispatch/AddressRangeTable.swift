/// Address ranges (ports or guest-physical addresses) mapped to prioritized handlers.
///
/// Registration only appends. The flat table of disjoint segments, each listing the
/// handlers covering it in priority order, is built when asked for (`segments`): once,
/// when `ExitDispatcher.freeze` makes the frozen tables, where a binary search over the
/// segments finds an exit's handlers, so dispatch is O(log n) and allocates nothing.
/// (Before the freeze, `lookup` builds them at each call: a dispatcher used without
/// vCPUs.) Building them at each insert made registration cost the square of the count
/// of ranges: `vmm run`'s ranges, each inserted twice (the plugin host's dry run first),
/// took a millisecond or more of its start-up.
struct AddressRangeTable<Handler> {
    struct Entry {
        let start: UInt64
        let end: UInt64 // exclusive
        let priority: Int32
        let exclusive: Bool
        let owner: String
        let handler: Handler
        let order: Int
    }

    struct Segment {
        let start: UInt64
        let end: UInt64
        let handlers: [Handler]
    }

    private(set) var entries: [Entry] = []
    /// The disjoint segments, built at each call.
    var segments: [Segment] { Self.segments(of: entries) }

    /// Adds a range; refuses an exclusive overlap, naming both owners.
    mutating func insert(start: UInt64, length: UInt64, priority: Int32, exclusive: Bool, owner: String,
                         unit: String, handler: Handler) throws(VMMError) {
        // [start, end) with end in UInt64: a range ending exactly at 2^64 has no end to keep.
        guard length > 0, start <= UInt64.max - length else {
            throw .invalidArgument("\(owner): \(unit) range at \(hex(start)) has length \(length)")
        }
        let end = start &+ length
        if let clash = clash(start: start, end: end, exclusive: exclusive) {
            throw .invalidArgument(
                "\(owner): \(unit) range [\(hex(start))..<\(hex(end))] overlaps [\(hex(clash.start))..<\(hex(clash.end))] owned by \(clash.owner)"
                    + " (an exclusive range cannot be shared)")
        }
        entries.append(Entry(start: start, end: end, priority: priority, exclusive: exclusive, owner: owner,
                             handler: handler, order: entries.count))
    }

    /// The first entry that [start, end) may not share with: an exclusive one, or any
    /// one when the newcomer is `exclusive`.
    func clash(start: UInt64, end: UInt64, exclusive: Bool) -> Entry? {
        entries.first { $0.start < end && start < $0.end && ($0.exclusive || exclusive) }
    }

    /// One sweep over the bounds, keeping the entries open at each: filtering every entry
    /// for every bound cost the square of the count at each insert (a plugin registering
    /// 1,000 single ports took 45 s, a restore of 1,024 regions a minute).
    private static func segments(of entries: [Entry]) -> [Segment] {
        let bounds = Set(entries.flatMap { [$0.start, $0.end] }).sorted()
        let byStart = entries.sorted { $0.start < $1.start }
        var open: [Entry] = [], next = 0
        var result: [Segment] = []
        for (lo, hi) in zip(bounds, bounds.dropFirst()) {
            open.removeAll { $0.end <= lo }
            while next < byStart.count, byStart[next].start <= lo { open.append(byStart[next]); next += 1 }
            guard !open.isEmpty else { continue }
            let covering = open.sorted { ($0.priority, -$0.order) > ($1.priority, -$1.order) }
            result.append(Segment(start: lo, end: hi, handlers: covering.map(\.handler)))
        }
        return result
    }

    /// The entries covering `address` in the order dispatch tries them (slow: traces).
    func covering(_ address: UInt64) -> [Entry] {
        entries.filter { $0.start <= address && address < $0.end }
            .sorted { ($0.priority, -$0.order) > ($1.priority, -$1.order) }
    }

    /// The handlers of the segment containing `address` (slow: builds the segments).
    func lookup(_ address: UInt64) -> [Handler]? {
        let segments = self.segments
        return segments.indexContaining(address).map { segments[$0].handlers }
    }
}

/// A half-open address range [start, end) in a sorted table of disjoint ranges.
protocol AddressSegment {
    var start: UInt64 { get }
    var end: UInt64 { get }
}

extension AddressRangeTable.Segment: AddressSegment {}

extension RandomAccessCollection where Element: AddressSegment, Index == Int {
    /// The index of the segment containing `address`, by binary search.
    @inline(__always)
    func indexContaining(_ address: UInt64) -> Int? {
        var lo = startIndex, hi = endIndex
        while lo < hi {
            let mid = (lo &+ hi) >> 1
            if self[mid].end <= address { lo = mid &+ 1 } else { hi = mid }
        }
        guard lo < endIndex, self[lo].start <= address else { return nil }
        return lo
    }
}
