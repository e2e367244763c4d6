import CUFFD
import Glibc
import SystemPackage
import VMMKit

/// One userfaultfd in MISSING mode: the API handshake, range registration, page
/// installs and message reads. The fd is non-blocking; the router polls it.
final class Userfaultfd: @unchecked Sendable {
    let fd: Int32
    let features: UInt64

    init(features wanted: UInt64) throws(VMMError) {
        let fd = cuffd_open(Int32(CUFFD_CLOEXEC | CUFFD_NONBLOCK))
        guard fd >= 0 else {
            let err = Errno(rawValue: cuffd_errno())
            throw .systemCallFailed(name: "userfaultfd (for non-root users set vm.unprivileged_userfaultfd=1)", errno: err)
        }
        var api = uffdio_api(api: UInt64(CUFFD_API), features: wanted, ioctls: 0)
        guard cuffd_ioctl(fd, CUFFDIO_API, &api) == 0 else {
            let err = Errno(rawValue: cuffd_errno())
            close(fd)
            throw .ioctlFailed(name: "UFFDIO_API (features 0x\(String(wanted, radix: 16)))", errno: err)
        }
        guard api.features & wanted == wanted else {
            close(fd)
            throw .capabilityMissing(name: "userfaultfd features 0x\(String(wanted & ~api.features, radix: 16))", what: "demand paging")
        }
        self.fd = fd
        self.features = api.features
    }

    deinit { close(fd) }

    func register(_ start: UnsafeMutableRawPointer, length: Int) throws(VMMError) {
        var reg = uffdio_register()
        reg.range.start = UInt64(UInt(bitPattern: start))
        reg.range.len = UInt64(length)
        reg.mode = CUFFDIO_REGISTER_MODE_MISSING
        guard cuffd_ioctl(fd, CUFFDIO_REGISTER, &reg) == 0 else {
            throw .ioctlFailed(name: "UFFDIO_REGISTER (MISSING) of \(length) bytes", errno: Errno(rawValue: cuffd_errno()))
        }
    }

    /// Takes a range out of the userfaultfd (best effort: the caller is giving up on it),
    /// which wakes every thread waiting on a page in it.
    func unregister(_ start: UnsafeMutableRawPointer, length: Int) {
        var range = uffdio_range(start: UInt64(UInt(bitPattern: start)), len: UInt64(length))
        _ = cuffd_ioctl(fd, CUFFDIO_UNREGISTER, &range)
    }

    enum CopyResult { case installed, alreadyPresent }

    /// Installs one page atomically and wakes the threads waiting on it. EEXIST (another
    /// thread won the race) is success.
    func copy(to dst: UnsafeMutableRawPointer, from src: UnsafeRawPointer, length: Int) throws(VMMError) -> CopyResult {
        while true {
            var c = uffdio_copy(dst: UInt64(UInt(bitPattern: dst)), src: UInt64(UInt(bitPattern: src)),
                                len: UInt64(length), mode: 0, copy: 0)
            if cuffd_ioctl(fd, CUFFDIO_COPY, &c) == 0 { return .installed }
            switch cuffd_errno() {
            case EEXIST: return .alreadyPresent
            case EAGAIN, EINTR: continue
            case let err: throw .ioctlFailed(name: "UFFDIO_COPY at host \(dst)", errno: Errno(rawValue: err))
            }
        }
    }

    /// Reads up to `buffer.count` pending messages; 0 when none is pending (the fd is
    /// non-blocking). Any other failure throws: swallowed, it left the router polling a
    /// readable fd it could not read, spinning while every fault went unanswered.
    func read(into buffer: UnsafeMutableBufferPointer<uffd_msg>) throws(Errno) -> Int {
        while true {
            let n = Glibc.read(fd, buffer.baseAddress!, buffer.count * MemoryLayout<uffd_msg>.stride)
            if n >= 0 { return n / MemoryLayout<uffd_msg>.stride }
            switch cuffd_errno() {
            case EAGAIN: return 0
            case EINTR: continue
            case let err: throw Errno(rawValue: err)
            }
        }
    }
}
