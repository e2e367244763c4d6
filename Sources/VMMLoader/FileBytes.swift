import Glibc
import SystemPackage
import VMMKit

/// Whole-file reads with swift-system (errors carry the errno).
public enum FileBytes {
    /// Reads a regular file of at most `limit` bytes. The file is opened with O_NONBLOCK
    /// and checked with fstat before any read, so a FIFO, a device or a directory is
    /// refused at once instead of blocking in open() or read() forever.
    public static func read(_ path: String, limit: UInt64 = UInt64(Int.max)) throws -> [UInt8] {
        let fd = try FileDescriptor.open(FilePath(path), .readOnly, options: [.nonBlocking, .closeOnExec])
        defer { try? fd.close() }
        var st = stat()
        guard fstat(fd.rawValue, &st) == 0 else { throw Errno(rawValue: errno) }
        guard st.st_mode & S_IFMT == S_IFREG else {
            throw LoaderError(.image, "not a regular file (\(RegularFile.kind(st.st_mode)))")
        }
        guard st.st_size >= 0, UInt64(st.st_size) <= limit else {
            throw LoaderError(.image, "too large: \(st.st_size) bytes (at most \(limit))")
        }
        let size = Int(st.st_size)
        var bytes = [UInt8](repeating: 0, count: size)
        var done = 0
        while done < size {
            let n = try bytes.withUnsafeMutableBytes { buf in
                try fd.read(fromAbsoluteOffset: Int64(done), into: UnsafeMutableRawBufferPointer(rebasing: buf[done...]))
            }
            if n == 0 { break }
            done += n
        }
        return Array(bytes.prefix(done))
    }
}
