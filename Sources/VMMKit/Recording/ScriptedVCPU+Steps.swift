import CKVM
import Glibc

/// Builders for the steps a kernel would play, laid out exactly as `kvm_run` is.
extension ScriptedVCPU.Step {
    /// Where I/O data goes (the kernel uses the page after the header).
    public static let ioDataOffset = 4096

    /// rc 0 with `reason` and the given union bytes (at offset 32).
    public static func exit(reason: UInt32, union: [UInt8] = [], extra: [ScriptedVCPU.Patch] = []) -> Self {
        var writes = [ScriptedVCPU.Patch(ExitCanary.exitReasonOffset, le(reason))]
        if !union.isEmpty { writes.append(.init(ExitCanary.unionOffset, union)) }
        return Self(writes: writes + extra)
    }

    public static var hlt: Self { exit(reason: UInt32(KVM_EXIT_HLT)) }

    /// `out` of `size` bytes of `value` to `port`.
    public static func pioOut(port: UInt16, size: UInt8, value: UInt32) -> Self {
        exit(reason: UInt32(KVM_EXIT_IO), union: ioUnion(out: true, port: port, size: size),
             extra: [.init(ioDataOffset, Array(le(value).prefix(Int(size))))])
    }

    /// `in` of `size` bytes from `port`.
    public static func pioIn(port: UInt16, size: UInt8) -> Self {
        exit(reason: UInt32(KVM_EXIT_IO), union: ioUnion(out: false, port: port, size: size))
    }

    static func ioUnion(out: Bool, port: UInt16, size: UInt8, count: UInt32 = 1) -> [UInt8] {
        [out ? 1 : 0, size] + le(port) + le(count) + le(UInt64(ioDataOffset))
    }

    /// An MMIO exit; `data` is what the guest writes (ignored for reads).
    public static func mmio(address: UInt64, length: UInt32, isWrite: Bool, data: UInt64 = 0) -> Self {
        exit(reason: UInt32(KVM_EXIT_MMIO), union: le(address) + le(isWrite ? data : 0) + le(length) + [isWrite ? 1 : 0])
    }

    /// -1 `errno` with a fresh `KVM_EXIT_MEMORY_FAULT` annotation.
    public static func annotatedFault(errno: Int32 = EFAULT, gpa: UInt64, size: UInt64, flags: UInt64 = 0) -> Self {
        Self(rc: -1, errno: errno, writes: [.init(ExitCanary.exitReasonOffset, le(UInt32(KVM_EXIT_MEMORY_FAULT))),
                                            .init(ExitCanary.unionOffset, le(flags) + le(gpa) + le(size))])
    }

    /// -1 `errno`, nothing written (the kernel's un-annotated path, or any error).
    public static func failure(errno: Int32, writes: [ScriptedVCPU.Patch] = []) -> Self {
        Self(rc: -1, errno: errno, writes: writes)
    }

    /// -1 EINTR as a kick gives it (the kernel writes KVM_EXIT_INTR).
    public static var interrupted: Self {
        failure(errno: EINTR, writes: [.init(ExitCanary.exitReasonOffset, le(UInt32(KVM_EXIT_INTR)))])
    }

    /// The same step with RIP set (what `registers()` returns from this entry on).
    public func at(rip: UInt64) -> Self {
        var copy = self
        var regs = Registers()
        regs.rip = rip
        copy.registers = regs
        return copy
    }
}

/// Little-endian bytes of an integer.
func le<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    withUnsafeBytes(of: value.littleEndian) { Array($0) }
}
