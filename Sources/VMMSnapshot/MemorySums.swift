import Glibc
import VMMKit

/// `memory.sums` (format 2): one little-endian u64 per 4 KiB page of `memory.bin`, page
/// `i` at byte `8 * i`: 0 for a zero page, otherwise `sum(of:)` of the page, which is
/// never 0. Sparse like the memory file (a hole is a run of zero pages), so a large,
/// mostly untouched guest costs what it holds. Each page is checked when a restore reads
/// it, lazily or eagerly: a memory file damaged or changed after the snapshot was
/// written is refused naming the page instead of restoring a silently different guest.
/// A check against accidents, not a signature: whoever can rewrite both files can
/// make them agree.
public enum MemorySums {
    public static let fileName = "memory.sums"
    static let pageSize = Int(GuestMemory.pageSize)

    /// Four lanes, lane `k` taking the page's little-endian 64-bit words `4 j + k`: each
    /// word is xored into its lane, which is multiplied by the golden-ratio constant and
    /// folded (`h ^= h >> 32`, so no bit of a word stays confined to the high half); the
    /// lanes start at FNV's offset basis plus `k`. Then lanes 1, 2, 3 are mixed into lane
    /// 0 the same way, and bit 0 is set. Four independent chains: about four times the
    /// speed of one (the multiply's latency bounds a chain).
    @inline(__always)
    public static func sum(of page: UnsafeRawPointer) -> UInt64 {
        let k: UInt64 = 0x9e37_79b9_7f4a_7c15
        @inline(__always) func mix(_ h: UInt64, _ w: UInt64) -> UInt64 { let m = (h ^ w) &* k; return m ^ (m >> 32) }
        var h0: UInt64 = 0xcbf2_9ce4_8422_2325, h1 = h0 &+ 1, h2 = h0 &+ 2, h3 = h0 &+ 3
        var i = 0
        while i < pageSize {
            h0 = mix(h0, UInt64(littleEndian: page.loadUnaligned(fromByteOffset: i, as: UInt64.self)))
            h1 = mix(h1, UInt64(littleEndian: page.loadUnaligned(fromByteOffset: i &+ 8, as: UInt64.self)))
            h2 = mix(h2, UInt64(littleEndian: page.loadUnaligned(fromByteOffset: i &+ 16, as: UInt64.self)))
            h3 = mix(h3, UInt64(littleEndian: page.loadUnaligned(fromByteOffset: i &+ 24, as: UInt64.self)))
            i &+= 32
        }
        return mix(mix(mix(h0, h1), h2), h3) | 1
    }

    static func isZero(_ page: UnsafeRawPointer) -> Bool {
        var i = 0
        while i < pageSize {
            if page.loadUnaligned(fromByteOffset: i, as: UInt64.self) != 0 { return false }
            i &+= 8
        }
        return true
    }

    /// What the file holds for `count` pages at `base`, little-endian.
    static func entries(_ base: UnsafeRawPointer, pages count: Int) -> [UInt64] {
        (0..<count).map { p in isZero(base + p * pageSize) ? 0 : sum(of: base + p * pageSize).littleEndian }
    }

    /// The file's size for a memory file of `memorySize` bytes (a multiple of the page
    /// size), or nil if it does not fit 64 bits.
    static func fileSize(memorySize: UInt64) -> UInt64? {
        let (bytes, overflow) = (memorySize / UInt64(pageSize)).multipliedReportingOverflow(by: 8)
        return memorySize % UInt64(pageSize) == 0 && !overflow ? bytes : nil
    }
}

/// An open `memory.sums`, for the restore's checks.
final class MemorySumsFile: @unchecked Sendable {
    let fd: Int32
    let path: String
    let memoryPath: String

    /// Opens the file of snapshot `dir` and checks its size against the memory file's.
    init(dir: String, memorySize: UInt64) throws(SnapshotError) {
        path = dir + "/" + MemorySums.fileName
        memoryPath = dir + "/" + SnapshotManifest.memoryFileName
        let (fd, size) = try SnapshotFiles.openForReading(path, in: dir)
        guard let expected = MemorySums.fileSize(memorySize: memorySize), size == expected else {
            close(fd)
            throw .invalid(path: dir, "\(MemorySums.fileName) has \(size) bytes; a \(memorySize)-byte memory file needs 8 a page (truncated?)")
        }
        self.fd = fd
    }

    deinit { close(fd) }

    /// The entries of `count` pages from the memory file's byte `fileOffset` (page aligned).
    func entries(at fileOffset: UInt64, pages count: Int) throws(SnapshotError) -> [UInt64] {
        var values = [UInt64](repeating: 0, count: count)
        let bytes = count * 8
        var done = 0
        while done < bytes {
            let at = off_t(fileOffset / UInt64(MemorySums.pageSize) * 8) + off_t(done)
            let n = values.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, bytes - done, at) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                if n == 0 { throw .invalid(path: path, "ends before the entry of memory file offset \(hex(fileOffset)) (truncated after opening?)") }
                throw SnapshotFiles.systemError("read of", path)
            }
            done += n
        }
        return values.map { UInt64(littleEndian: $0) }
    }

    /// Checks `count` pages at `base`, read from the memory file's byte `fileOffset`.
    func check(_ base: UnsafeRawPointer, pages count: Int, at fileOffset: UInt64) throws(SnapshotError) {
        let expected = try entries(at: fileOffset, pages: count)
        for p in 0..<count {
            let page = base + p * MemorySums.pageSize
            let ok = expected[p] == 0 ? MemorySums.isZero(page) : MemorySums.sum(of: page) == expected[p]
            if !ok { throw mismatch(at: fileOffset + UInt64(p * MemorySums.pageSize)) }
        }
    }

    func mismatch(at fileOffset: UInt64) -> SnapshotError {
        .invalid(path: memoryPath, "the page at byte \(hex(fileOffset)) does not match \(MemorySums.fileName): "
            + "the memory file was damaged or changed after the snapshot was written")
    }

    /// Calls `body` with the memory-file offset of every page in `[start, end)` whose entry
    /// is not 0 (a page that held data), skipping the file's holes (SEEK_DATA).
    func forEachDataPage(from start: UInt64, to end: UInt64, _ body: (UInt64) throws(SnapshotError) -> Void) throws(SnapshotError) {
        let page = UInt64(MemorySums.pageSize)
        let chunk = 4096 // entries per read
        var index = start / page
        let last = end / page
        while index < last {
            let data = lseek(fd, off_t(index * 8), seekData)
            if data < 0 {
                if errno == ENXIO { return }
                throw SnapshotFiles.systemError("lseek(seekData) in", path)
            }
            index = max(index, UInt64(data) / 8)
            guard index < last else { return }
            let count = Int(min(UInt64(chunk), last - index))
            let values = try entries(at: index * page, pages: count)
            for (i, v) in values.enumerated() where v != 0 { try body((index + UInt64(i)) * page) }
            index += UInt64(count)
        }
    }
}
