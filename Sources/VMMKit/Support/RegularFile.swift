import Glibc
import SystemPackage

/// Opening a file named by input (an image or config, a snapshot's files, a recording,
/// a plugin, a page source) for reading without ever waiting: O_NONBLOCK, so that open()
/// of a FIFO returns at once instead of blocking until some writer appears, then fstat,
/// and only a regular file is accepted. Each reader turns a failure into its own error.
public enum RegularFile {
    public enum Failure: Error, Equatable {
        /// open() failed (ENOENT: the file is missing).
        case open(Errno)
        case fstat(Errno)
        /// Not a regular file: what it is ("a FIFO", "a directory", ...).
        case notRegular(String)
    }

    /// The open descriptor (O_RDONLY | O_CLOEXEC | O_NONBLOCK, which does not change how
    /// a regular file is read) and the file's size; the caller closes it.
    public static func openForReading(_ path: String) throws(Failure) -> (fd: Int32, size: UInt64) {
        try open(path, writable: false)
    }

    /// As `openForReading`, opened O_RDWR when `writable` (a disk image the guest writes).
    public static func open(_ path: String, writable: Bool) throws(Failure) -> (fd: Int32, size: UInt64) {
        let fd = Glibc.open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw .open(.current) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let err = Errno.current
            close(fd)
            throw .fstat(err)
        }
        guard st.st_mode & S_IFMT == S_IFREG, st.st_size >= 0 else {
            close(fd)
            throw .notRegular(kind(st.st_mode))
        }
        return (fd, UInt64(st.st_size))
    }

    /// `openForReading` with its failure as a `VMMError` naming `what` ("recording /x"):
    /// `systemCallFailed` for open and fstat, `invalidArgument` for a file of another kind.
    public static func openForReading(_ path: String, naming what: String) throws(VMMError) -> (fd: Int32, size: UInt64) {
        do { return try openForReading(path) } catch {
            switch error {
            case let .open(e): throw .systemCallFailed(name: "open of \(what)", errno: e)
            case let .fstat(e): throw .systemCallFailed(name: "fstat of \(what)", errno: e)
            case let .notRegular(kind): throw .invalidArgument("\(what): not a regular file (\(kind))")
            }
        }
    }

    /// "a FIFO", "a directory", ... for messages.
    public static func kind(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFREG: "a regular file"
        case S_IFIFO: "a FIFO"
        case S_IFDIR: "a directory"
        case S_IFCHR: "a character device"
        case S_IFBLK: "a block device"
        case S_IFSOCK: "a socket"
        default: "mode \(String(mode, radix: 8))"
        }
    }
}
