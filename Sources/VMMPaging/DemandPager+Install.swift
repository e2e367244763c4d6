import VMMKit

extension DemandPager {
    /// Makes the page containing `gpa` present (fetched from the source and installed,
    /// once however many threads ask; the others wait for it). For engines that fetch
    /// pages themselves, off the fault path: async page faults fetch in the background
    /// while the guest runs something else.
    public func installPage(containing gpa: UInt64, for request: PageRequest = PageRequest(vcpu: nil, access: [])) throws(VMMError) {
        guard pageIndex(gpa) != nil else {
            throw .invalidArgument("demand paging: guest-physical 0x\(String(gpa, radix: 16)) is outside region \(region)")
        }
        try ensureRange(gpa & ~(GuestMemory.pageSize - 1), length: 1, by: .vcpu, for: request)
    }
}
