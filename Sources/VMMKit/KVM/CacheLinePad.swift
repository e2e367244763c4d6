/// 128 bytes of nothing (two cache lines: the adjacent-line prefetcher pairs them).
/// Objects written on every exit by one vCPU thread put one before and one after their
/// hot fields, so that another vCPU's objects, which malloc may place right before or
/// right behind them, never share a line with them: false sharing made 2 vCPUs'
/// user-space path scale 1.24x instead of 2x. With a pad only after them, hot fields at
/// an object's start shared its first line with whatever malloc put before it.
/// (`VCPU` needs none before: its hot counter lies past its first 64 bytes.)
struct CacheLinePad {
    private var words: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
                        UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) =
        (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    init() {}
}

extension UnsafeMutableBufferPointer {
    /// Uninitialised room for `capacity` elements on cache lines (pairs of them) of its
    /// own: for tables every vCPU reads on every exit, which must share no line with
    /// anything a vCPU thread writes. Deallocate with `deallocate()`.
    static func allocateIsolated(capacity: Int) -> UnsafeMutableBufferPointer<Element> {
        let bytes = Swift.max(capacity, 1).multipliedReportingOverflow(by: MemoryLayout<Element>.stride)
        precondition(!bytes.overflow && bytes.partialValue <= Int.max - 127, "table too large")
        let raw = UnsafeMutableRawPointer.allocate(byteCount: (bytes.partialValue + 127) & ~127, alignment: 128)
        return UnsafeMutableBufferPointer(start: raw.bindMemory(to: Element.self, capacity: Swift.max(capacity, 1)), count: capacity)
    }
}
