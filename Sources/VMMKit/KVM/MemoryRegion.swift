import CKVM

/// One guest-physical range backed by host memory and registered as a KVM memslot.
public struct MemoryRegion: @unchecked Sendable, CustomStringConvertible {
    /// Where the host memory comes from.
    public enum Backing: Sendable, Equatable {
        /// Private anonymous memory: the cheapest, cannot be shared or snapshotted.
        case anonymous
        /// A memfd: the region can be snapshotted (read the fd) or shared with another process.
        case memfd
        /// A guest_memfd created with `GUEST_MEMFD_FLAG_MMAP | INIT_SHARED`, mapped for the host.
        case guestMemfd
    }

    public let name: String
    public let slot: UInt32
    public let guestAddress: UInt64
    public let size: UInt64
    public let backing: Backing
    public let readOnly: Bool
    public let logDirty: Bool
    /// The host mapping; valid until the region is removed or the VM closes.
    public let hostAddress: UnsafeMutableRawPointer
    /// The memfd or guest_memfd behind the region (-1 for anonymous memory).
    public let fd: Int32

    public var endAddress: UInt64 { guestAddress + size }

    public func contains(_ gpa: UInt64) -> Bool { gpa >= guestAddress && gpa - guestAddress < size }

    /// Whether [gpa, gpa+length) lies inside this region.
    public func contains(_ gpa: UInt64, length: Int) -> Bool {
        contains(gpa) && UInt64(length) <= endAddress - gpa
    }

    func overlaps(_ start: UInt64, _ size: UInt64) -> Bool {
        start < endAddress && guestAddress < start + size
    }

    public var description: String {
        "'\(name)' [\(hex(guestAddress))..<\(hex(endAddress))]"
    }
}
