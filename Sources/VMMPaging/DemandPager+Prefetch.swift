import Glibc
import VMMKit

extension DemandPager {
    /// Guest-physical addresses of the pages present now (resident at start or
    /// installed since): sampled some time after a restore, the guest's working set.
    /// Pages being installed at the call are waited for, so every page the guest has
    /// touched (and `statistics.pagesFetched` counts) is in it.
    public var presentPageAddresses: [UInt64] { tracker.presentIndices.map { gpa(ofPage: $0) } }

    /// Whether the page at `gpa` is demand-paged from the source (in the region and in
    /// the `only` ranges). Such a page that is not in memory holds what the source says
    /// (a snapshot reads it from there); any other missing page is demand-zero.
    public func isPaged(gpa: UInt64) -> Bool {
        guard let page = pageIndex(gpa) else { return false }
        return pagedMask?[page] ?? true
    }

    /// Pages one prefetch step reads and installs at most (1 MiB).
    static let prefetchRunPages = 256

    /// Fetches and installs `pages` (guest-physical, page aligned; others are ignored)
    /// ahead of the guest's touches, on the calling thread. Runs of consecutive pages
    /// that nobody has are read from the source with one `readPages` call and installed
    /// with one UFFDIO_COPY (REAP's bulk fetch); pages already present or being fetched
    /// by a vCPU or the router are skipped, never fetched twice. Returns how many this
    /// call installed. Throws the source's error after `retryLimit` tries (the pages of
    /// that run are left to the fault path).
    @discardableResult
    public func prefetch(_ pages: [UInt64]) throws(VMMError) -> Int {
        let before = statistics.pagesFetched
        var indices = pages.compactMap { $0 % GuestMemory.pageSize == 0 ? pageIndex($0) : nil }
        indices.sort()
        let pageSize = Int(GuestMemory.pageSize)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.prefetchRunPages * pageSize, alignment: pageSize)
        defer { buffer.deallocate() }
        var i = 0
        while i < indices.count {
            // The run: consecutive pages from indices[i] that this thread could claim.
            let first = indices[i]
            var n = 0
            while i < indices.count, n < Self.prefetchRunPages {
                if indices[i] < first + n { i += 1; continue } // a duplicate
                guard indices[i] == first + n, tracker.tryClaim(indices[i]) else { break }
                n += 1
                i += 1
            }
            if n == 0 { i += 1; continue } // someone else has it: skip it
            try installRun(first, count: n, buffer: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<(n * pageSize)]))
        }
        return statistics.pagesFetched - before
    }

    /// Reads pages [first, first + count) (claimed by the caller) and installs them in
    /// one UFFDIO_COPY; page by page if the kernel already has one of them.
    private func installRun(_ first: Int, count n: Int, buffer: UnsafeMutableRawBufferPointer) throws(VMMError) {
        var lastError: VMMError?
        for _ in 0..<max(1, retryLimit) {
            do {
                try source.readPages(at: gpa(ofPage: first), into: buffer, for: PageRequest(vcpu: nil, access: []))
                lastError = nil
                break
            } catch {
                lastError = error
                count { $0.sourceFailures += 1 }
            }
        }
        if let lastError {
            tracker.abandon(first, count: n)
            throw lastError
        }
        let pageSize = Int(GuestMemory.pageSize)
        let dst = region.hostAddress + first * pageSize
        // Counted before the copy, which wakes vCPUs waiting on these pages.
        count { $0.pagesFetched += n; $0.installedByRouter += n }
        do {
            if try uffd.copy(to: dst, from: buffer.baseAddress!, length: n * pageSize) == .alreadyPresent {
                for k in 0..<n {
                    _ = try uffd.copy(to: dst + k * pageSize, from: buffer.baseAddress! + k * pageSize, length: pageSize)
                }
            }
        } catch {
            count { $0.pagesFetched -= n; $0.installedByRouter -= n }
            tracker.abandon(first, count: n)
            throw error
        }
        tracker.markPresent(first, count: n)
    }
}
