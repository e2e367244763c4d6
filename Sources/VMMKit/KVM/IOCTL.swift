import CKVM
import Glibc
import SystemPackage

/// The whole unsafe ioctl layer: three calls that turn -1/errno into a typed throw.
/// EINTR is retried here (swift-system's `retryOnInterrupt`) for every request but
/// KVM_RUN, where EINTR is the kick and must reach the run loop.
@inline(__always)
func ioctl(_ fd: Int32, _ request: UInt, _ name: StaticString, _ arg: UnsafeMutableRawPointer?) throws(VMMError) -> Int32 {
    while true {
        let rc = ckvm_ioctl(fd, request, arg)
        if rc >= 0 { return rc }
        let err = Errno.current
        if err == .interrupted { continue }
        throw .ioctlFailed(name: "\(name)", errno: err)
    }
}

@inline(__always)
func ioctl(_ fd: Int32, _ request: UInt, _ name: StaticString, value: UInt = 0) throws(VMMError) -> Int32 {
    while true {
        let rc = ckvm_ioctl_value(fd, request, value)
        if rc >= 0 { return rc }
        let err = Errno.current
        if err == .interrupted { continue }
        throw .ioctlFailed(name: "\(name)", errno: err)
    }
}

/// ioctl with a typed in/out argument.
@inline(__always)
func ioctl<T>(_ fd: Int32, _ request: UInt, _ name: StaticString, _ arg: inout T) throws(VMMError) -> Int32 {
    while true {
        let rc = withUnsafeMutablePointer(to: &arg) { ckvm_ioctl(fd, request, UnsafeMutableRawPointer($0)) }
        if rc >= 0 { return rc }
        let err = Errno.current
        if err == .interrupted { continue }
        throw .ioctlFailed(name: "\(name)", errno: err)
    }
}
