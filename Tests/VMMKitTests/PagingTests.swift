import Glibc
import Testing
@testable import VMMKit
@testable import VMMPaging

/// Demand paging on real KVM, every fault path this host's kernel gives.
@Suite("Demand paging on real KVM", .enabled(if: KVMAvailability.present, KVMAvailability.reason),
       .enabled(if: UserfaultfdAvailability.present, UserfaultfdAvailability.reason))
struct PagingTests {
    static let dataStart: UInt64 = 0x10_0000
    static let writeStart: UInt64 = 0x30_0000

    /// dp_checksum over [start, end) with `stride`, then `writes` pages written at 0x300000.
    static func checksum(_ start: UInt64, _ end: UInt64, stride: UInt64, writes: UInt64) -> (inout Registers, Int) -> Void {
        { regs, _ in
            regs.rdi = start; regs.rsi = end; regs.r8 = stride
            regs.r10 = writeStart; regs.r11 = writes
        }
    }

    func checkChecksumRun(_ guest: PagedGuest, start: UInt64, end: UInt64, stride: UInt64, writes: UInt64) throws {
        try #require(try guest.run() == [.guestExit(code: 0)])
        #expect(guest.reported(0) == guest.expectedSum(from: start, to: end, stride: stride))
        let touched = Int((end - start) / 4096) + Int(writes)
        #expect(guest.pager.statistics.pagesFetched == touched)
        for i in 0..<writes {
            let page = Self.writeStart + i * 4096
            #expect(try guest.vm.memory.read(page, as: UInt64.self) == page ^ 0x5a5a)
            #expect(try guest.vm.memory.read(page + 8, as: UInt64.self) == guest.snapshotQword(page + 8))
        }
    }

    @Test("canary on real KVM: a ring-3 access to a missing page in SIGBUS mode is an un-annotated EFAULT naming vCPU and RIP")
    func canaryRing3SigbusFault() throws {
        let guest = try PagedGuest("dp_checksum", ring: 3, mode: .sigbus, attach: false,
                                   setup: Self.checksum(Self.dataStart, Self.dataStart + 0x1000, stride: 8, writes: 0))
        let reasons = try guest.run()
        #expect(reasons == [.memoryFault("unresolved memory fault with no address (not annotated), EFAULT (errno 14), vCPU 0 at RIP 0x10007; last exits (oldest first): rc -1 EFAULT (errno 14): un-annotated memory fault (no address)")])
        #expect(guest.vm.vcpus[0].canary.recentExits.map(\.outcome) == [.unannotatedFault])
    }

    @Test("SIGBUS mode refuses ring-3 data faults with a diagnosis, not a loop")
    func sigbusRing3DataFault() throws {
        let guest = try PagedGuest("dp_checksum", ring: 3, mode: .sigbus,
                                   setup: Self.checksum(Self.dataStart, Self.dataStart + 0x1000, stride: 8, writes: 0))
        #expect(try guest.run() == [.memoryFault("vCPU 0 at RIP 0x10007: un-annotated EFAULT with no guest-physical address and no missing page at RIP: a ring-3 data access to a page that is not present yet carries no address in SIGBUS mode, so the pager cannot resolve it; use DemandPager.Mode.blocking (the default) for guests that run ring-3 code")])
        #expect(guest.pager.statistics.pagesFetched == 0)
    }

    @Test("blocking mode, ring 3: checksum of 256 lazily fetched pages matches the file, writes land, fetched == touched")
    func blockingRing3() throws {
        // A source only the vCPU's own thread may call: the kick path, ring-3 vCPUs resolve
        // their own faults (the router only on a timeout).
        let guest = try PagedGuest("dp_checksum", ring: 3, mode: .blocking,
                                   source: { try VCPUThreadSource(SnapshotFilePageSource(path: $0.snapshotPath)) },
                                   setup: Self.checksum(Self.dataStart, Self.dataStart + 0x10_0000, stride: 8, writes: 4))
        try checkChecksumRun(guest, start: Self.dataStart, end: Self.dataStart + 0x10_0000, stride: 8, writes: 4)
        let s = guest.pager.statistics
        #expect(s.installedByVCPU + s.installedByRouter == 260)
        #expect(s.kicks > 0 && s.installedByVCPU > 0)
    }

    @Test("read-ahead: sequential ring-3 reads get pages installed ahead by the router, bounded by the region; checksum right")
    func readAhead() throws {
        let guest = try PagedGuest("dp_checksum", ring: 3, mode: .blocking, attach: false,
                                   setup: Self.checksum(Self.dataStart, Self.dataStart + 0x10_0000, stride: 8, writes: 0))
        guest.pager.readAheadPages = 100_000
        #expect(guest.pager.readAheadPages == DemandPager.maxReadAheadPages)
        guest.pager.readAheadPages = 16
        try guest.pager.attach(to: guest.dispatcher, vcpus: guest.vm.vcpus)
        try #require(try guest.run() == [.guestExit(code: 0)])
        #expect(guest.reported(0) == guest.expectedSum(from: Self.dataStart, to: Self.dataStart + 0x10_0000, stride: 8))
        let s = guest.pager.statistics
        // The guest touched 256 pages; most came ahead of their fault. Pages past the
        // guest's last are read ahead too (at most 16 of them).
        #expect(s.readAhead > 128 && s.messages < 256, "fewer faults than pages: \(s)")
        #expect(s.pagesFetched >= 256 && s.pagesFetched <= 256 + 16, "\(s)")
    }

    @Test("blocking mode, ring 3, a source callable from any thread: the router installs every page, no vCPU is kicked")
    func blockingRing3AnyThread() throws {
        let guest = try PagedGuest("dp_checksum", ring: 3, mode: .blocking,
                                   setup: Self.checksum(Self.dataStart, Self.dataStart + 0x10_0000, stride: 8, writes: 4))
        try checkChecksumRun(guest, start: Self.dataStart, end: Self.dataStart + 0x10_0000, stride: 8, writes: 4)
        let s = guest.pager.statistics
        #expect(s.kicks == 0 && s.installedByVCPU == 0 && s.installedByRouter == 260, "\(s)")
    }

    @Test("blocking mode, ring 0: the router resolves faults a kick cannot reach")
    func blockingRing0() throws {
        let guest = try PagedGuest("dp_checksum", ring: 0, mode: .blocking,
                                   setup: Self.checksum(Self.dataStart, Self.dataStart + 0x8000, stride: 512, writes: 2))
        try checkChecksumRun(guest, start: Self.dataStart, end: Self.dataStart + 0x8000, stride: 512, writes: 2)
        // A kick cannot get a ring-0 vCPU out while its page is missing: the router
        // resolves every fault, on the kernel's repeated message.
        let s = guest.pager.statistics
        #expect(s.installedByRouter == 10 && s.installedByVCPU == 0)
    }

    @Test("SIGBUS mode, ring 0: MMIO exits inside RAM are completed exactly from the installed pages")
    func sigbusRing0() throws {
        let guest = try PagedGuest("dp_checksum", ring: 0, mode: .sigbus,
                                   setup: Self.checksum(Self.dataStart, Self.dataStart + 0x8000, stride: 512, writes: 2))
        try checkChecksumRun(guest, start: Self.dataStart, end: Self.dataStart + 0x8000, stride: 512, writes: 2)
        #expect(guest.pager.statistics.installedByVCPU == 10)
    }

    static func straddleSetup(_ regs: inout Registers, _: Int) {
        regs.rdi = 0x10_1000 - 2          // read across 0x100000 | 0x101000
        regs.rsi = 0x10_3000 - 2          // write across 0x102000 | 0x103000
        regs.r8 = 0x10_4008               // copy source: 0x104000..0x107000 (4 pages)
        regs.r9 = 0x11_0000               // copy destination: 0x110000..0x112000 (3 pages)
        regs.r10 = 3 * 4096 / 8
    }

    @Test("straddling reads and writes and rep movsq across missing pages, in each mode", arguments: [
        (DemandPager.Mode.sigbus, 0), (.blocking, 0), (.blocking, 3),
    ])
    func straddleAndRep(mode: DemandPager.Mode, ring: Int) throws {
        let guest = try PagedGuest("dp_straddle", ring: ring, mode: mode, setup: Self.straddleSetup)
        // (Reading a page that is still missing would take SIGBUS in SIGBUS mode.)
        let reasons = try guest.run()
        try #require(reasons == [.guestExit(code: 0)], "\(reasons)")
        #expect(guest.reported(0) == guest.snapshotQword(0x10_1000 - 2))
        let m = guest.vm.memory
        #expect(try m.read(0x10_3000 - 2, as: UInt64.self) == 0x1122_3344_5566_7788)
        #expect(try m.read(0x10_3000 - 10, as: UInt64.self) == guest.snapshotQword(0x10_3000 - 10))
        #expect(try m.read(0x10_3000 + 6, as: UInt64.self) == guest.snapshotQword(0x10_3000 + 6))
        #expect(try m.readBytes(0x11_0000, count: 3 * 4096) == Array(guest.snapshot[0x10_4008..<(0x10_4008 + 3 * 4096)]))
        #expect(guest.pager.statistics.pagesFetched == 2 + 2 + 4 + 3)
    }

    @Test("a jump into a page not present yet runs the code from the snapshot, in each mode", arguments: [
        (DemandPager.Mode.sigbus, 0), (.sigbus, 3), (.blocking, 0), (.blocking, 3),
    ])
    func jumpIntoMissingPage(mode: DemandPager.Mode, ring: Int) throws {
        let stub = Payload.bytes("dp_stub")
        let guest = try PagedGuest("dp_jump", ring: ring, mode: mode,
                                   patchSnapshot: { $0.replaceSubrange(0x20_0000..<(0x20_0000 + stub.count), with: stub) },
                                   setup: { regs, _ in regs.rdi = 0x20_0000 })
        #expect(try guest.run() == [.guestExit(code: 0)])
        #expect(guest.markers.all == [0x5eed])
        #expect(guest.pager.statistics.pagesFetched == 1)
    }

    @Test("two vCPUs faulting on the same pages at once: each page fetched once, both sums right", arguments: [
        (DemandPager.Mode.blocking, 3, UInt64(0x10_0000), UInt64(8)), (.sigbus, 0, UInt64(0x8000), UInt64(512)), (.blocking, 0, UInt64(0x8000), UInt64(512)),
    ])
    func twoVCPUsSamePages(mode: DemandPager.Mode, ring: Int, length: UInt64, stride: UInt64) throws {
        let guest = try PagedGuest("dp_checksum", ring: ring, vcpus: 2, mode: mode,
                                   setup: Self.checksum(Self.dataStart, Self.dataStart + length, stride: stride, writes: 0))
        #expect(try guest.run() == [.guestExit(code: 0), .guestExit(code: 0)])
        let expected = guest.expectedSum(from: Self.dataStart, to: Self.dataStart + length, stride: stride)
        #expect(guest.reported(0) == expected && guest.reported(1) == expected)
        #expect(guest.pager.statistics.pagesFetched == Int(length / 4096))
    }

    @Test("a page source that cannot deliver ends in the stuck diagnosis, not a hang", arguments: [
        (DemandPager.Mode.sigbus, 0), (.blocking, 3), (.blocking, 0),
    ])
    func brokenSource(mode: DemandPager.Mode, ring: Int) throws {
        let broken = BrokenPageSource()
        let guest = try PagedGuest("dp_checksum", ring: ring, mode: mode, source: { _ in broken },
                                   setup: Self.checksum(Self.dataStart, Self.dataStart + 0x1000, stride: 8, writes: 0))
        let reasons = try guest.run()
        let cause = "broken source could not deliver guest-physical page 0x100000 after 3 tries: fetch of page 0x100000 failed: Connection reset by peer (errno 104)"
        // Who gives up decides the prefix: the vCPU (it can name RIP) or, at ring 0 in
        // blocking mode — or at ring 3 when the kick came late — the router.
        let byVCPU = StopReason.stuck("vCPU 0 at RIP 0x10007: " + cause)
        let byRouter = StopReason.stuck("vCPU 0 (blocked in the kernel on the page): " + cause)
        switch (mode, ring) {
        case (.blocking, 0): #expect(reasons == [byRouter])
        case (.blocking, _): #expect(reasons == [byVCPU] || reasons == [byRouter])
        default: #expect(reasons == [byVCPU])
        }
        let attempts = broken.attempts.all
        #expect(attempts.count % 3 == 0 && !attempts.isEmpty && attempts.allSatisfy { $0 == 0x10_0000 })
        // The source is told who waits and how: a read by vCPU 0 (the kick path at ring 3
        // only knows the page).
        let expected = PageRequest(vcpu: 0, access: ring == 3 ? [] : .read)
        #expect(broken.requests.all.allSatisfy { $0 == expected || ($0 == PageRequest(vcpu: 0, access: .read) && ring == 3) })
        #expect(guest.pager.statistics.pagesFetched == 0)
    }

    /// A kick that is lost leaves the post to age out, and the router resolves the fault
    /// itself. The source must still hear what the kernel reported (a read by vCPU 0):
    /// the expired post was resolved with no access at all, which made the ring-0 case
    /// above fail now and then under TSan, where the kernel's second message came later
    /// than the post's 10 ms.
    @Test("a lost kick: the router resolves the aged post and tells the source the kernel's access",
          arguments: [0, 3])
    func lostKick(ring: Int) throws {
        let broken = BrokenPageSource()
        let guest = try PagedGuest("dp_checksum", ring: ring, mode: .blocking, source: { _ in broken },
                                   setup: Self.checksum(Self.dataStart, Self.dataStart + 0x1000, stride: 8, writes: 0))
        let router = try #require(guest.pager.router)
        router.injectedLostKicks.store(true, ordering: .relaxed)
        let cause = "broken source could not deliver guest-physical page 0x100000 after 3 tries: fetch of page 0x100000 failed: Connection reset by peer (errno 104)"
        #expect(try guest.run() == [.stuck("vCPU 0 (blocked in the kernel on the page): " + cause)])
        #expect(broken.attempts.all == [0x10_0000, 0x10_0000, 0x10_0000])
        #expect(broken.requests.all == Array(repeating: PageRequest(vcpu: 0, access: .read), count: 3))
        #expect(guest.pager.statistics.kicks >= 1)
    }

    /// The router is the only reader of the userfaultfd: if it stopped quietly, the next
    /// fault would leave its vCPU in the kernel for ever. Its poll (ENOMEM) or its read
    /// (EIO) is made to fail once the guest is under way; every vCPU must stop with the
    /// router's diagnosis. Armed before the run: a failing read comes only after the
    /// first fault's poll; a failing poll at the latest after the first batch (the router
    /// polls between batches; when it drained reads until none was left, vCPUs faulting
    /// faster than it read kept it from polling, and all 256 pages arrived).
    @Test("a fault router whose poll or read fails stops every vCPU with its diagnosis, not a hang",
          arguments: [(3, "poll"), (0, "poll"), (3, "read"), (0, "read")])
    func routerFails(ring: Int, call: String) throws {
        let guest = try PagedGuest("dp_checksum", ring: ring, vcpus: 2, mode: .blocking,
                                   setup: Self.checksum(Self.dataStart, Self.dataStart + 0x100000, stride: 8, writes: 0))
        let router = try #require(guest.pager.router)
        let failure: String
        if call == "poll" {
            router.injectedPollError.store(ENOMEM, ordering: .relaxed)
            failure = "poll on the userfaultfd failed: Cannot allocate memory"
        } else {
            router.injectedReadError.store(EIO, ordering: .relaxed)
            failure = "read from the userfaultfd failed: Input/output error"
        }
        let reasons = try guest.run()
        let why = StopReason.stuck("demand paging from snapshot \(guest.snapshotPath) ended: its fault router stopped because \(failure); no page can be delivered any more")
        #expect(reasons == [why, why])
        #expect(guest.pager.statistics.pagesFetched < 256)
    }

    @Test("a paged VM leaves no fd, mapping or router thread behind", arguments: [DemandPager.Mode.blocking, .sigbus])
    func noLeaks(mode: DemandPager.Mode) throws {
        func once() throws {
            let guest = try PagedGuest("dp_checksum", ring: mode == .blocking ? 3 : 0, mode: mode,
                                       setup: Self.checksum(Self.dataStart, Self.dataStart + 0x4000, stride: 512, writes: 1))
            #expect(try guest.run() == [.guestExit(code: 0)])
        }
        try once() // first use loads what stays loaded (signal handler, thread-locals)
        let fds = openFDs(), maps = mappingCount(), before = vmmThreads()
        try once()
        #expect(fdsOpened(since: fds) == [])
        #expect(mappingsUnreliable || mappingCount() <= maps) // a leak is growth; fewer is an earlier test's memory given back
        // A joined thread stays listed in /proc until the kernel reaps it, a moment after
        // pthread_join returns: wait for that, then none of the run's threads may be left.
        // (Comparing all threads by count failed once in CI: a thread of an earlier test
        // was reaped meanwhile.)
        _ = eventually { vmmThreads().subtracting(before).isEmpty }
        #expect(vmmThreads().subtracting(before).isEmpty, "left behind: \(vmmThreads().subtracting(before))")
    }
}

/// VMMKit's threads in this process: TID and name of each /proc/self/task entry whose
/// name starts with `ThreadName.prefix`.
func vmmThreads() -> Set<String> {
    guard let dir = opendir("/proc/self/task") else { return ["opendir failed"] }
    defer { closedir(dir) }
    var found = Set<String>()
    while let entry = readdir(dir) {
        let tid = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        guard tid.first?.isNumber == true, let file = fopen("/proc/self/task/\(tid)/comm", "r") else { continue }
        var line = [UInt8](repeating: 0, count: 32)
        let count = fread(&line, 1, line.count, file)
        fclose(file)
        let name = String(decoding: line.prefix(count).prefix { $0 != 0x0a }, as: UTF8.self)
        if name.hasPrefix(ThreadName.prefix) { found.insert("\(tid) \(name)") }
    }
    return found
}

