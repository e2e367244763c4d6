import VMMKit

/// Why a snapshot could not be written or restored. Each message names the snapshot
/// (and the file, record or byte offset) and what was wrong, in one line.
public enum SnapshotError: Error, Equatable, CustomStringConvertible, Sendable {
    /// A file of the snapshot is missing, truncated, corrupt or not in this format.
    case invalid(path: String, String)
    /// The snapshot is well formed but this host cannot honour it (format version,
    /// CPUID, KVM capabilities, memory layout).
    case incompatible(path: String, String)
    /// The snapshot cannot be taken or written (destination exists, a vCPU is running,
    /// a device cannot save its state).
    case refused(String)
    /// A system call or ioctl failed while saving or restoring.
    case system(VMMError)

    public var description: String {
        switch self {
        case let .invalid(path, message): "snapshot \(path): \(message)"
        case let .incompatible(path, message): "snapshot \(path) cannot be restored on this host: \(message)"
        case let .refused(message): "snapshot refused: \(message)"
        case let .system(error): error.description
        }
    }
}

@inline(__always)
func hex<T: BinaryInteger>(_ value: T) -> String { "0x" + String(value, radix: 16) }
