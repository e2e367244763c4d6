import Glibc
import VMMKit

extension DemandPager {
    /// Guest-physical addresses of the pages present now (resident at start or
    /// installed since): sampled some time after a restore, the guest's working set.
    public var presentPageAddresses: [UInt64] { tracker.presentIndices.map { gpa(ofPage: $0) } }

    /// Fetches and installs `pages` (guest-physical, page aligned; others are ignored)
    /// ahead of the guest's touches, on the calling thread. Pages already present or
    /// being fetched by a vCPU are skipped or waited for, never fetched twice.
    /// Returns how many this call installed.
    @discardableResult
    public func prefetch(_ pages: [UInt64]) throws(VMMError) -> Int {
        let before = statistics.pagesFetched
        for gpa in pages {
            guard let page = pageIndex(gpa) else { continue }
            try ensurePresent(page, by: .router, for: PageRequest(vcpu: nil, access: []))
        }
        return statistics.pagesFetched - before
    }
}
