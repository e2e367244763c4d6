import Glibc
import VMMKit

/// Which pages of a guest RAM region may hold data, found without touching any page.
/// Reading an untouched page is not free: on a memfd it allocates the page (the file
/// grows towards the RAM size), on anonymous memory it maps the zero page, and in a
/// lazily restored region it faults the page in through userfaultfd. A snapshot of a
/// large, mostly untouched guest therefore asks the kernel where the data is.
enum RegionPages {
    /// One flag per page of `region`: false where the page is certainly a hole (never
    /// written, reads as zero), true where it may hold data (read it, compare with zero).
    /// When the kernel cannot tell, every page may hold data (the slow, correct answer).
    static func mayHoldData(_ region: MemoryRegion) -> [Bool] {
        let pages = Int(region.size / GuestMemory.pageSize)
        let answer = region.fd >= 0 ? fileExtents(region.fd, size: region.size, pages: pages)
                                    : pagemap(region.hostAddress, pages: pages)
        return answer ?? Array(repeating: true, count: pages)
    }

    /// memfd and guest_memfd: SEEK_DATA/SEEK_HOLE on the file (shmem answers from its
    /// page cache; a swapped-out page counts as data). The region maps the file from
    /// offset 0.
    static func fileExtents(_ fd: Int32, size: UInt64, pages: Int) -> [Bool]? {
        var result = [Bool](repeating: false, count: pages)
        let page = GuestMemory.pageSize
        var pos: UInt64 = 0
        while pos < size {
            let data = lseek(fd, off_t(pos), seekData)
            if data < 0 { return errno == ENXIO ? result : nil }
            guard UInt64(data) < size else { break }
            let hole = lseek(fd, data, seekHole)
            guard hole > data else { return nil }
            let end = min(UInt64(hole), size)
            for p in Int(UInt64(data) / page)..<Int((end + page - 1) / page) { result[p] = true }
            pos = end
        }
        return result
    }

    /// Anonymous memory: /proc/self/pagemap, one 64-bit entry per virtual page; bit 63
    /// present, bit 62 swapped. An entry with neither was never touched. (mincore would
    /// call a swapped-out page absent and lose it.)
    static func pagemap(_ base: UnsafeMutableRawPointer, pages: Int) -> [Bool]? {
        let fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        let first = UInt64(UInt(bitPattern: base)) / GuestMemory.pageSize
        let chunk = 1 << 15
        var entries = [UInt64](repeating: 0, count: chunk)
        var result = [Bool](repeating: false, count: pages)
        var done = 0
        while done < pages {
            let n = min(chunk, pages - done)
            let bytes = n * 8
            let got = entries.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, bytes, off_t((first + UInt64(done)) * 8)) }
            if got < 0 && errno == EINTR { continue }
            guard got == bytes else { return nil }
            for i in 0..<n where entries[i] & (3 << 62) != 0 { result[done + i] = true }
            done += n
        }
        return result
    }
}
