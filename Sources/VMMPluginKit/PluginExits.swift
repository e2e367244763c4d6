import CVMMPlugin

/// A port I/O exit, a view on the host's record; valid only during the handler call.
public struct PIOExit {
    public let record: UnsafeMutablePointer<vmm_exit_t>

    public var vcpuID: UInt32 { record.pointee.vcpu_id }
    public var port: UInt16 { record.pointee.pio.port }
    /// Bytes per element: 1, 2 or 4.
    public var size: Int { Int(record.pointee.pio.size) }
    /// Elements (more than 1 for a batched `rep ins`).
    public var count: Int { Int(record.pointee.pio.count) }
    public var isWrite: Bool { record.pointee.pio.is_write != 0 }

    /// Element `index`, little endian, zero-extended.
    public func element(_ index: Int = 0) -> UInt32 {
        guard let data = record.pointee.pio.data, index < count else { return 0 }
        var value: UInt32 = 0
        for i in (0..<size).reversed() { value = value << 8 | UInt32(data[index * size + i]) }
        return value
    }

    /// Sets element `index` (truncated to `size` bytes); for IN it reaches the guest.
    public func setElement(_ index: Int = 0, _ value: UInt32) {
        guard let data = record.pointee.pio.data, index < count else { return }
        for i in 0..<size { data[index * size + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(i))) }
    }

    /// The first element: the value of a plain `in`/`out`.
    public var value: UInt32 {
        get { element(0) }
        nonmutating set { setElement(0, newValue) }
    }
}

/// An MMIO exit, a view on the host's record; valid only during the handler call.
public struct MMIOExit {
    public let record: UnsafeMutablePointer<vmm_exit_t>

    public var vcpuID: UInt32 { record.pointee.vcpu_id }
    public var address: UInt64 { record.pointee.mmio.gpa }
    /// 1 to 8 bytes.
    public var length: Int { Int(record.pointee.mmio.len) }
    public var isWrite: Bool { record.pointee.mmio.is_write != 0 }

    /// The low `length` bytes, little endian: the stored value, or for a load what
    /// the handler sets (it reaches the guest).
    public var data: UInt64 {
        get { withUnsafeBytes(of: record.pointee.mmio.data) { UInt64(littleEndian: $0.load(as: UInt64.self)) } }
        nonmutating set {
            withUnsafeMutableBytes(of: &record.pointee.mmio.data) { $0.storeBytes(of: newValue.littleEndian, as: UInt64.self) }
        }
    }
}
