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

    /// Element `index`, little endian, zero-extended; 0 for an index out of range.
    /// Inlinable, with one load per size: a plugin's handler reads its value in a
    /// few instructions rather than a byte loop in another module.
    @inlinable
    public func element(_ index: Int = 0) -> UInt32 {
        let pio = record.pointee.pio
        guard let data = pio.data, index >= 0, index < Int(pio.count) else { return 0 }
        // index < count, so the element lies in the host's size x count bytes.
        let p = UnsafeRawPointer(data) + index &* Int(pio.size)
        switch pio.size {
        case 1: return UInt32(p.load(as: UInt8.self))
        case 2: return UInt32(UInt16(littleEndian: p.loadUnaligned(as: UInt16.self)))
        case 4: return UInt32(littleEndian: p.loadUnaligned(as: UInt32.self))
        default: return 0 // the host passes 1, 2 or 4 only (vmm_plugin.h)
        }
    }

    /// Sets element `index` (truncated to `size` bytes); for IN it reaches the guest.
    /// An index out of range is ignored.
    @inlinable
    public func setElement(_ index: Int = 0, _ value: UInt32) {
        let pio = record.pointee.pio
        guard let data = pio.data, index >= 0, index < Int(pio.count) else { return }
        let p = UnsafeMutableRawPointer(data) + index &* Int(pio.size)
        switch pio.size {
        case 1: p.storeBytes(of: UInt8(truncatingIfNeeded: value), as: UInt8.self)
        case 2: p.storeBytes(of: UInt16(truncatingIfNeeded: value).littleEndian, as: UInt16.self)
        case 4: p.storeBytes(of: value.littleEndian, as: UInt32.self)
        default: break
        }
    }

    /// The first element: the value of a plain `in`/`out`.
    @inlinable
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
    @inlinable
    public var data: UInt64 {
        get { withUnsafeBytes(of: record.pointee.mmio.data) { UInt64(littleEndian: $0.load(as: UInt64.self)) } }
        nonmutating set {
            withUnsafeMutableBytes(of: &record.pointee.mmio.data) { $0.storeBytes(of: newValue.littleEndian, as: UInt64.self) }
        }
    }
}
