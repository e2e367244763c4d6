import Glibc
import SystemPackage
import VMMKit

/// Whole-file reads with swift-system (errors carry the errno).
public enum FileBytes {
    /// Reads a regular file of at most `limit` bytes, to its end. The file is opened with
    /// O_NONBLOCK and checked with fstat before any read, so a FIFO, a device or a
    /// directory is refused at once instead of blocking in open() or read() forever. The
    /// size fstat gives is where reading starts, not where it ends: /proc and /sys files
    /// say 0 or a page whatever they hold, and a file may grow after fstat; either is read
    /// whole, or refused past `limit`, never cut short.
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
        // One byte more than fstat's size: the end of file found there proves the size.
        var bytes = [UInt8](repeating: 0, count: Int(opened.size) + 1)
        var done = 0
        while true {
            if done == bytes.count {
                guard UInt64(done) <= limit else { throw LoaderError(.image, "too large: more than \(limit) bytes") }
                let more = min(UInt64(max(done, 4096)) - 1, limit - UInt64(done)) + 1
                bytes.append(contentsOf: repeatElement(0, count: Int(more)))
            }
            let n = try bytes.withUnsafeMutableBytes { buf in
                try fd.read(fromAbsoluteOffset: Int64(done), into: UnsafeMutableRawBufferPointer(rebasing: buf[done...]))
            }
            if n == 0 { break }
            done += n
        }
        guard UInt64(done) <= limit else { throw LoaderError(.image, "too large: more than \(limit) bytes") }
        bytes.removeSubrange(done...)
        return bytes
    }
}
