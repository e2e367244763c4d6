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

extension UnsafeMutableRawPointer {
    /// Uninitialised room for `byteCount` bytes on cache lines (pairs of them) of its own:
    /// 128-byte aligned, rounded up to a multiple of 128 bytes, so that nothing malloc
    /// places beside it shares a line with it. For what one vCPU thread writes on every
    /// exit and for tables every vCPU reads on every exit. Deallocate with `deallocate()`.
    static func allocateIsolated(byteCount: Int) -> UnsafeMutableRawPointer {
        precondition(byteCount >= 0 && byteCount <= Int.max - 127, "block too large")
        return .allocate(byteCount: Swift.max((byteCount + 127) & ~127, 128), alignment: 128)
    }
}

extension UnsafeMutableBufferPointer {
    /// Uninitialised room for `capacity` elements (at least one) on lines of its own, as
    /// `UnsafeMutableRawPointer.allocateIsolated(byteCount:)`.
    static func allocateIsolated(capacity: Int) -> UnsafeMutableBufferPointer<Element> {
        let bytes = Swift.max(capacity, 1).multipliedReportingOverflow(by: MemoryLayout<Element>.stride)
        precondition(!bytes.overflow, "table too large")
        let raw = UnsafeMutableRawPointer.allocateIsolated(byteCount: bytes.partialValue)
        return UnsafeMutableBufferPointer(start: raw.bindMemory(to: Element.self, capacity: Swift.max(capacity, 1)), count: capacity)
    }
}
