import Glibc
import SystemPackage
import VMMKit

/// Whole-file reads with swift-system (errors carry the errno).
public enum FileBytes {
    /// Reads a regular file of at most `limit` bytes. The file is opened with O_NONBLOCK
    /// and checked with fstat before any read, so a FIFO, a device or a directory is
    /// refused at once instead of blocking in open() or read() forever.
    public static func read(_ path: String, limit: UInt64 = UInt64(Int.max)) throws -> [UInt8] {
        let opened: (fd: Int32, size: UInt64)
        do { opened = try RegularFile.openForReading(path) } catch {
            switch error {
            case let .open(e), let .fstat(e): throw e
            case let .notRegular(kind): throw LoaderError(.image, "not a regular file (\(kind))")
            }
        }
        let fd = FileDescriptor(rawValue: opened.fd)
        defer { try? fd.close() }
        guard opened.size <= limit else {
            throw LoaderError(.image, "too large: \(opened.size) bytes (at most \(limit))")
        }
        let size = Int(opened.size)
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
