import Glibc
import SystemPackage
import VMMKit

/// Where demand-paged guest pages come from. `readPage` may block (a network source
/// waits for its peer, as post-copy migration does); it runs on the vCPU thread or the
/// fault router, never with a lock held that another vCPU needs for a different page.
public protocol PageSource: AnyObject, Sendable {
    /// A name for diagnoses ("snapshot /var/vm.mem").
    var name: String { get }
    /// Fills `buffer` (one 4 KiB page) with the contents of guest-physical page `gpa`.
    /// `request` says who waits for it and how it was touched (a network source may
    /// prioritise by it).
    func readPage(at gpa: UInt64, into buffer: UnsafeMutableRawBufferPointer, for request: PageRequest) throws(VMMError)
    /// Whether `readPage` may be called on any thread, concurrently, for a vCPU that is
    /// still blocked in the kernel on the page: then the fault router resolves ring-3
    /// faults itself (no kick, no `KVM_RUN` re-entry per page). Default false.
    var mayBeCalledFromAnyThread: Bool { get }
    /// Fills `buffer` (a whole number of pages) with the consecutive guest-physical
    /// pages from `gpa`: the bulk reads of working-set prefetch. The default reads page
    /// by page; a source that can do better (one `pread` of a file) implements it.
    func readPages(at gpa: UInt64, into buffer: UnsafeMutableRawBufferPointer, for request: PageRequest) throws(VMMError)
}

extension PageSource {
    public var mayBeCalledFromAnyThread: Bool { false }

    public func readPages(at gpa: UInt64, into buffer: UnsafeMutableRawBufferPointer, for request: PageRequest) throws(VMMError) {
        let page = Int(GuestMemory.pageSize)
        for k in 0..<(buffer.count / page) {
            try readPage(at: gpa + UInt64(k * page), into: UnsafeMutableRawBufferPointer(rebasing: buffer[(k * page)..<((k + 1) * page)]), for: request)
        }
    }
}

/// Who needs a page, and for what: the memory-fault event's vCPU and access.
public struct PageRequest: Sendable, Equatable {
    public struct Access: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        /// Same bits as VMM_ACCESS_READ/WRITE/EXEC in vmm_plugin.h.
        public static let read = Access(rawValue: 1)
        public static let write = Access(rawValue: 2)
        public static let execute = Access(rawValue: 4)
    }

    /// The faulting vCPU, nil when unknown (a VMM thread touched the page).
    public var vcpu: UInt32?
    /// Empty when the kernel did not say.
    public var access: Access

    public init(vcpu: UInt32?, access: Access) {
        self.vcpu = vcpu
        self.access = access
    }
}

/// A guest-memory snapshot file: byte `gpa - guestBase` of the file is guest-physical
/// byte `gpa`.
public final class SnapshotFilePageSource: PageSource, @unchecked Sendable {
    public let path: String
    public let guestBase: UInt64
    public let fileSize: UInt64
    private let fd: Int32

    public init(path: String, guestBase: UInt64 = 0) throws(VMMError) {
        let (fd, size) = try RegularFile.openForReading(path, naming: "snapshot \(path)")
        self.path = path
        self.guestBase = guestBase
        self.fileSize = size
        self.fd = fd
    }

    deinit { close(fd) }

    public var name: String { "snapshot \(path)" }

    /// pread on one fd: thread-safe.
    public var mayBeCalledFromAnyThread: Bool { true }

    public func readPage(at gpa: UInt64, into buffer: UnsafeMutableRawBufferPointer, for request: PageRequest) throws(VMMError) {
        guard gpa >= guestBase, gpa - guestBase <= fileSize, UInt64(buffer.count) <= fileSize - (gpa - guestBase) else {
            throw .invalidArgument("guest-physical page 0x\(String(gpa, radix: 16)) lies outside \(name) (\(fileSize) bytes from guest-physical 0x\(String(guestBase, radix: 16)))")
        }
        var done = 0
        while done < buffer.count {
            let n = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(gpa - guestBase) + off_t(done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                throw .systemCallFailed(name: "pread of page 0x\(String(gpa, radix: 16)) from \(name)", errno: Errno(rawValue: n < 0 ? errno : EIO))
            }
            done += n
        }
    }
}
