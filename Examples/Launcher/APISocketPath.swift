import Glibc

/// Checks on `--api-sock PATH` before the server binds, so each refusal is one clear line:
/// a path too long for `sun_path`, a path that exists and is not a socket (never
/// replaced), a folder the socket cannot be created in, or a socket a live server still
/// answers on. A stale socket is removed.
enum APISocketPath {
    /// `sun_path` holds 108 bytes including the terminating NUL.
    static let maxBytes = 107

    /// `refuse(why)`: the error for a path the user must change, naming where it came
    /// from (`LaunchOptions.rangeError`: the flag, or the config file's key).
    static func prepare(_ path: String, refuse: (String) -> LauncherError) throws(LauncherError) {
        guard !path.isEmpty, path.utf8.count <= maxBytes, !path.utf8.contains(0) else {
            throw refuse("must be a path of 1 to \(maxBytes) bytes (a Unix socket address), not \(path.utf8.count)")
        }
        var st = stat()
        guard lstat(path, &st) == 0 else {
            let error = errno
            // The path's own fault, as an existing file is: a folder that is missing, is
            // not a directory or takes no new file. bind(2) found it once the VM was
            // built, as a host error (status 20: "cannot serve: bind: No such file or directory").
            if let (folder, why) = folderProblem(path) { throw refuse("\(path): cannot create the socket in \(folder): \(why)") }
            if error == ENOENT { return }
            throw LauncherError(.host, "--api-sock \(path): \(String(cString: strerror(error)))")
        }
        guard st.st_mode & S_IFMT == S_IFSOCK else {
            throw refuse("\(path): exists and is not a socket; refusing to replace it")
        }
        if answers(path) {
            throw LauncherError(.host, "--api-sock \(path): another process is serving on this socket")
        }
        guard unlink(path) == 0 || errno == ENOENT else {
            throw LauncherError(.host, "--api-sock \(path): cannot remove the stale socket: \(String(cString: strerror(errno)))")
        }
    }

    /// The folder `path` would be created in and why it cannot be, or nil when it can.
    static func folderProblem(_ path: String) -> (folder: String, why: String)? {
        let folder = path.utf8.lastIndex(of: UInt8(ascii: "/")).map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        var st = stat()
        guard stat(folder, &st) == 0 else { return (folder, String(cString: strerror(errno))) }
        guard st.st_mode & S_IFMT == S_IFDIR else { return (folder, String(cString: strerror(ENOTDIR))) }
        guard access(folder, W_OK | X_OK) == 0 else { return (folder, String(cString: strerror(errno))) }
        return nil
    }

    /// Whether something accepts connections on the socket at `path`.
    static func answers(_ path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_un()
        guard fill(&addr, path) else { return false }
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0 }
        }
    }

    /// Writes `path` into `addr`; false if it does not fit.
    static func fill(_ addr: inout sockaddr_un, _ path: String) -> Bool {
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count <= maxBytes else { return false }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            raw.initializeMemory(as: UInt8.self, repeating: 0)
            raw.copyBytes(from: bytes)
        }
        return true
    }

    /// The socket file a server bound: which file `remove` may take away.
    struct Identity: Equatable {
        let device: UInt64
        let inode: UInt64
    }

    /// The socket at `path` now, nil if there is none.
    static func identity(_ path: String) -> Identity? {
        var st = stat()
        guard lstat(path, &st) == 0, st.st_mode & S_IFMT == S_IFSOCK else { return nil }
        return Identity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
    }

    /// Removes the socket at exit if it is still the one this process bound. Once the
    /// server stops listening another `vmm` may bind the same path (the stop can wait a
    /// second more for a client that sent half a request): removing whatever socket was
    /// there took that process's control socket away. The check and the unlink are two
    /// calls; a bind between them needs the other process to start within microseconds.
    static func remove(_ path: String, boundAs bound: Identity?) {
        guard let bound, identity(path) == bound else { return }
        unlink(path)
    }
}
