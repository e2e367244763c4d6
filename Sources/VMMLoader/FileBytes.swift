import Glibc
import SystemPackage

/// Whole-file reads with swift-system (errors carry the errno).
public enum FileBytes {
    public static func read(_ path: String) throws -> [UInt8] {
        let fd = try FileDescriptor.open(FilePath(path), .readOnly)
        defer { try? fd.close() }
        var st = stat()
        guard fstat(fd.rawValue, &st) == 0 else { throw Errno(rawValue: errno) }
        guard st.st_mode & S_IFMT == S_IFREG else { throw LoaderError(.image, "not a regular file") }
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
