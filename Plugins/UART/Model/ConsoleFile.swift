import Glibc

/// Opens the UART's `file:PATH` (output or input) without ever waiting. A plain open()
/// of a FIFO blocks until its other end is opened: in a plugin's init that ran into the
/// handler budget (status 8 after 10 s) when nobody was reading or writing yet. A FIFO
/// is opened read-write instead, as QEMU's pipe chardev does: the open returns at once,
/// output waits in the pipe for a reader, and input outlives each writer (one closing
/// is no end of file, so `echo a > fifo; echo b > fifo` both arrive).
public enum ConsoleFile {
    /// A descriptor in blocking mode (the writer thread and the input pump wait on it,
    /// never a vCPU), or -1 with `errno` set.
    public static func open(_ path: String, forOutput: Bool) -> Int32 {
        let flags = forOutput ? O_WRONLY | O_CREAT | O_TRUNC : O_RDONLY
        var fd = Glibc.open(path, flags | O_CLOEXEC | O_NONBLOCK, 0o644)
        // Output to a FIFO nobody reads fails with ENXIO; input from one opens, but would
        // read end of file until a writer came.
        if fd >= 0 ? isFIFO(fd: fd) : errno == ENXIO && isFIFO(path: path) {
            if fd >= 0 { Glibc.close(fd) }
            fd = Glibc.open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK)
        }
        guard fd >= 0 else { return -1 }
        let mode = fcntl(fd, F_GETFL)
        guard mode >= 0, fcntl(fd, F_SETFL, mode & ~O_NONBLOCK) == 0 else {
            let saved = errno
            Glibc.close(fd)
            errno = saved
            return -1
        }
        return fd
    }

    private static func isFIFO(fd: Int32) -> Bool {
        var st = stat()
        return fstat(fd, &st) == 0 && st.st_mode & S_IFMT == S_IFIFO
    }

    private static func isFIFO(path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && st.st_mode & S_IFMT == S_IFIFO
    }
}
