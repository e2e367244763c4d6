import Glibc
import VMMKit

/// A raw disk image (`vmm run --hda PATH`, QEMU's `-hda` with `format=raw`), read and
/// written in place. The file must be a regular file of whole 512-byte sectors, at least
/// one and at most 2^48 (LBA48's reach); anything else is refused when it is opened, in
/// one line. Opened O_RDWR, or O_RDONLY with `readOnly`, where a guest's write fails as a
/// write to a write-protected drive does: the command is aborted (QEMU's `readonly=on`).
final class DiskImage: SectorStore, @unchecked Sendable {
    let path: String
    let sectors: UInt64
    let readOnly: Bool
    private let fd: Int32

    init(path: String, readOnly: Bool, flag: String = "--hda") throws(LauncherError) {
        let file: (fd: Int32, size: UInt64)
        do { file = try RegularFile.open(path, writable: !readOnly) } catch {
            let why = switch error {
            case let .open(e): "cannot open \(path.quotedForMessage)\(readOnly ? "" : " for writing"): \(String(cString: strerror(e.rawValue)))"
            case let .fstat(e): "cannot stat \(path.quotedForMessage): \(String(cString: strerror(e.rawValue)))"
            case let .notRegular(kind): "\(path.quotedForMessage): not a regular file (\(kind))"
            }
            throw LauncherError(.image, "\(flag): \(why)")
        }
        let (fd, size) = file
        let why: String? = if size == 0 {
            "an empty file holds no sector"
        } else if size % 512 != 0 {
            "\(size) bytes is not a whole number of 512-byte sectors"
        } else if size / 512 > ATAState.maxSectors {
            "\(size / 512) sectors is more than LBA48 reaches (2^48)"
        } else { nil }
        if let why {
            close(fd)
            throw LauncherError(.image, "\(flag): \(path.quotedForMessage): \(why)")
        }
        (self.path, self.sectors, self.readOnly, self.fd) = (path, size / 512, readOnly, fd)
    }

    deinit { close(fd) }

    func read(_ lba: UInt64, into buffer: UnsafeMutableRawBufferPointer) -> Bool {
        transfer(lba) { pread(fd, buffer.baseAddress! + $0, 512 - $0, $1) }
    }

    func write(_ lba: UInt64, from buffer: UnsafeRawBufferPointer) -> Bool {
        !readOnly && transfer(lba) { pwrite(fd, buffer.baseAddress! + $0, 512 - $0, $1) }
    }

    func flush() -> Bool {
        readOnly || retrying { fdatasync(fd) } == 0
    }

    /// One sector moved in as many calls as it takes; EINTR retried, end of file an error
    /// (the file shrank under the VMM).
    private func transfer(_ lba: UInt64, _ call: (Int, off_t) -> Int) -> Bool {
        guard lba < sectors else { return false }
        var done = 0
        while done < 512 {
            let n = retrying { call(done, off_t(lba * 512) + off_t(done)) }
            guard n > 0 else { return false }
            done += n
        }
        return true
    }

    private func retrying<T: BinaryInteger>(_ call: () -> T) -> T {
        while true {
            let r = call()
            if r >= 0 || errno != EINTR { return r }
        }
    }
}
