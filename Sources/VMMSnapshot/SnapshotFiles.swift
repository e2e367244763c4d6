import Glibc
import SystemPackage
import VMMKit

/// Small file helpers for the snapshot directory: whole-file reads with a size limit,
/// writes that report which file failed.
enum SnapshotFiles {
    static func systemError(_ what: String, _ path: String) -> SnapshotError {
        .system(.systemCallFailed(name: "\(what) \(path)", errno: Errno(rawValue: errno)))
    }

    /// Opens one of the snapshot's files (`RegularFile`: a FIFO is refused, not waited on).
    static func openForReading(_ path: String, in snapshot: String) throws(SnapshotError) -> (fd: Int32, size: UInt64) {
        do {
            return try RegularFile.openForReading(path)
        } catch {
            switch error {
            case .open(.noSuchFileOrDirectory): throw .invalid(path: snapshot, "file \(path) is missing")
            case let .open(e): throw .system(.systemCallFailed(name: "open of \(path)", errno: e))
            case let .fstat(e): throw .system(.systemCallFailed(name: "fstat of \(path)", errno: e))
            case let .notRegular(kind): throw .invalid(path: snapshot, "\(path) is not a regular file (\(kind))")
            }
        }
    }

    /// Reads a whole file of at most `limit` bytes.
    static func read(_ path: String, limit: Int, in snapshot: String) throws(SnapshotError) -> [UInt8] {
        let (fd, size) = try openForReading(path, in: snapshot)
        defer { close(fd) }
        guard size <= UInt64(limit) else { throw .invalid(path: snapshot, "\(path) has \(size) bytes; at most \(limit) expected") }
        var bytes = [UInt8](repeating: 0, count: Int(size))
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, $0.count - done, off_t(done)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw n < 0 ? systemError("read of", path) : .invalid(path: snapshot, "\(path) shrank while being read") }
            done += n
        }
        return bytes
    }

    static func writeAll(_ fd: Int32, _ base: UnsafeRawPointer, _ count: Int, at offset: UInt64, path: String) throws(SnapshotError) {
        var done = 0
        while done < count {
            let n = pwrite(fd, base + done, count - done, off_t(offset) + off_t(done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw systemError("write of", path) }
            done += n
        }
    }

    /// Creates `path` (which must not exist), writes `bytes`, fsyncs.
    static func create(_ path: String, _ bytes: [UInt8]) throws(SnapshotError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw systemError("create of", path) }
        defer { close(fd) }
        if !bytes.isEmpty {
            try withBytes(bytes) { raw throws(SnapshotError) in try writeAll(fd, raw.baseAddress!, raw.count, at: 0, path: path) }
        }
        guard fsync(fd) == 0 else { throw systemError("fsync of", path) }
    }

    /// Removes a partly written snapshot directory (only the files a snapshot has).
    static func removeTree(_ dir: String) {
        guard let d = opendir(dir) else { return }
        while let entry = readdir(d) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { unlink(dir + "/" + name) }
        }
        closedir(d)
        rmdir(dir)
    }

    static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }
}
