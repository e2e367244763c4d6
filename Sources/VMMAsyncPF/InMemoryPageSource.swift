import Glibc
import VMMKit
import VMMPaging

/// A snapshot held in memory, each page delivered after a fixed latency: stands in for
/// a post-copy peer or a slow disk in tests and benchmarks.
public final class InMemoryPageSource: PageSource, @unchecked Sendable {
    public let guestBase: UInt64
    public let latencyMicroseconds: UInt32
    private let bytes: [UInt8]

    /// Byte `gpa - guestBase` of `bytes` is guest-physical byte `gpa`.
    public init(guestBase: UInt64, bytes: [UInt8], latencyMicroseconds: UInt32 = 0) {
        self.guestBase = guestBase
        self.bytes = bytes
        self.latencyMicroseconds = latencyMicroseconds
    }

    public var name: String { "in-memory snapshot (\(bytes.count) bytes, \(latencyMicroseconds) µs per page)" }

    public func readPage(at gpa: UInt64, into buffer: UnsafeMutableRawBufferPointer, for request: PageRequest) throws(VMMError) {
        guard gpa >= guestBase, gpa - guestBase <= UInt64(bytes.count), UInt64(buffer.count) <= UInt64(bytes.count) - (gpa - guestBase) else {
            throw .invalidArgument("guest-physical page 0x\(String(gpa, radix: 16)) lies outside \(name) from 0x\(String(guestBase, radix: 16))")
        }
        if latencyMicroseconds > 0 { usleep(latencyMicroseconds) }
        let offset = Int(gpa - guestBase)
        bytes.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[offset..<(offset + buffer.count)])) }
    }
}
