import CKVM
import Glibc

/// What a closed KVM object puts over its fd number: /dev/null. The kernel object is
/// released (dup3 closes it), the number is not: a thread that read the number before
/// `close()` and issues its ioctl after reaches /dev/null (ENOTTY), never a file opened
/// meanwhile that took the number. The owner closes the number when it is freed.
enum FDPlaceholder {
    /// Opened once, by the first VM or vCPU created: a vCPU thread under seccomp, which
    /// may close its own VM, may not open files.
    static let devNull: Int32 = open("/dev/null", O_RDWR | O_CLOEXEC)

    /// Puts /dev/null over `fd`. False when there is no /dev/null: the caller keeps `fd`
    /// itself open until it is freed instead.
    static func takeOver(_ fd: Int32) -> Bool {
        devNull >= 0 && ckvm_dup3(devNull, fd, O_CLOEXEC) >= 0
    }
}
