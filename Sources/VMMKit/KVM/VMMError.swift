import Glibc
import SystemPackage

/// Everything that can go wrong below a guest: each case names what was wrong and
/// where, so the message alone tells a person what to do.
public enum VMMError: Error, Equatable, CustomStringConvertible, Sendable {
    /// /dev/kvm could not be opened.
    case kvmUnavailable(path: String, errno: Errno)
    /// The kernel speaks another KVM API version than 12.
    case apiVersionMismatch(path: String, found: Int32)
    /// An ioctl failed; `name` is the request (e.g. `KVM_CREATE_VM`).
    case ioctlFailed(name: String, errno: Errno)
    /// A plain system call failed (mmap, memfd_create, ...).
    case systemCallFailed(name: String, errno: Errno)
    /// The kernel lacks a capability the call needs.
    case capabilityMissing(name: String, what: String)
    /// A memory region was refused before anything was mapped.
    case invalidMemoryRegion(String)
    /// A guest-physical access that no region covers (or only partly covers).
    case unmappedGuestAddress(gpa: UInt64, length: Int)
    /// A write to a region that the guest sees as read-only memory.
    case readOnlyGuestAddress(gpa: UInt64, region: String)
    /// An argument outside what the call accepts.
    case invalidArgument(String)
    /// The object was already closed.
    case closed(String)
    /// The exit canary refused an exit record (stale, half-written or clobbered).
    case exitAnomaly(ExitAnomaly)


    public var description: String {
        switch self {
        case let .kvmUnavailable(path, errno):
            let hint: String
            switch errno {
            case .noSuchFileOrDirectory:
                hint = "the KVM module is not loaded or this machine has no virtualization (try `modprobe kvm`)"
            case .permissionDenied, .notPermitted:
                hint = "add your user to the group owning \(path) (usually `kvm`) or run as root"
            default:
                hint = "check that \(path) is the KVM device"
            }
            return "cannot open \(path): \(errno.vmmDescription); \(hint)"
        case let .apiVersionMismatch(path, found):
            return "\(path) reports KVM API version \(found); this library needs version 12"
        case let .ioctlFailed(name, errno):
            return "\(name) failed: \(errno.vmmDescription)"
        case let .systemCallFailed(name, errno):
            return "\(name) failed: \(errno.vmmDescription)"
        case let .capabilityMissing(name, what):
            return "the kernel lacks \(name), needed for \(what)"
        case let .invalidMemoryRegion(message):
            return message
        case let .unmappedGuestAddress(gpa, length) where length < 0:
            return "guest-physical access at \(hex(gpa)) has a negative length (\(length))"
        case let .unmappedGuestAddress(gpa, length):
            return "guest-physical range \(hex(gpa))..<\(hex(gpa &+ UInt64(length))) is not covered by one memory region"
        case let .readOnlyGuestAddress(gpa, region):
            return "guest-physical address \(hex(gpa)) is in read-only region '\(region)'"
        case let .invalidArgument(message):
            return message
        case let .closed(what):
            return "\(what) is already closed"
        case let .exitAnomaly(anomaly):
            return anomaly.description
        }
    }
}

extension Errno {
    /// "Permission denied (errno 13)": strerror text plus the number, which people search for.
    public var vmmDescription: String {
        "\(String(cString: strerror(rawValue))) (errno \(rawValue))"
    }

    static var current: Errno { Errno(rawValue: Glibc.errno) }
}

@inline(__always)
func hex<T: BinaryInteger>(_ value: T) -> String {
    "0x" + String(value, radix: 16)
}
