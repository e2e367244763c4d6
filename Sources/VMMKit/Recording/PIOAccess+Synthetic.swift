extension PIOAccess {
    /// A port I/O exit made up by a tool rather than decoded from `kvm_run`: for
    /// benchmarks and replays that feed `ExitDispatcher.dispatch` without the kernel.
    /// `data` must hold `size * count` bytes and outlive the dispatch.
    public static func synthetic(port: UInt16, size: Int, count: Int = 1, isWrite: Bool,
                                 data: UnsafeMutableRawBufferPointer) -> PIOAccess {
        PIOAccess(port: port, size: size, count: count, isWrite: isWrite, data: data)
    }
}
