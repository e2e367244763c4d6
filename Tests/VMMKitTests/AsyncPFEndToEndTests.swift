import Testing
import VMMAsyncPF
@testable import VMMKit
import VMMPaging

/// A tiny guest kernel (Examples/Guests/async_pf_kernel.S) running two ring-3 tasks;
/// task A reads pages served slowly from a snapshot by the demand pager (userfaultfd,
/// blocking mode with thread ids; the fault router kicks the ring-3 vCPU).
@Suite("Async PF end to end on real KVM", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct AsyncPFEndToEndTests {
    static let lazyBase: UInt64 = 0x20_0000
    static let pages = 6

    /// Qword `q` of snapshot page `page`.
    static func pattern(_ page: Int, _ q: Int) -> UInt64 { 0x5a5a_0000_0000_0000 | UInt64(page) << 16 | UInt64(q) }

    static func snapshot(pages: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: pages * 4096)
        for p in 0..<pages {
            for q in 0..<512 {
                withUnsafeBytes(of: pattern(p, q).littleEndian) { src in
                    for b in 0..<8 { bytes[p * 4096 + q * 8 + b] = src[b] }
                }
            }
        }
        return bytes
    }

    enum Request { case nmi, pageFault(address: UInt64, errorCode: UInt32) }

    struct Outcome {
        let reason: StopReason
        let stats: AsyncPFStatistics
        let paging: DemandPager.Statistics
        let guestNotPresent, guestReady, guestAsyncOn, bCounter: UInt64
        let bProgress: [UInt64]
        let firstLast: [(UInt64, UInt64)]
        let regionMatches: Bool
        /// What the guest's NMI handler recorded: how often it ran, `flags` and CR2 then.
        let nmiCount, nmiFlags, nmiCR2: UInt64
        /// The qword the kernel read at CPL 0 from the extra lazy page, if asked to.
        let cpl0Value: UInt64
        /// The token task A waits on (the CR2 the async handler read) and the CR2 of a
        /// #PF the guest treated as real (fatal).
        let waitToken, fatalCR2: UInt64
    }

    /// Boots the kernel with `pages` lazy pages, each arriving `latency` µs after it is asked for.
    /// `cpl0Read`: the kernel also reads an extra lazy page at CPL 0 while booting.
    /// `atFirstFault`: the guest's #PF handler exits before clearing `flags` and the
    /// host asks for an NMI or a real #PF right then.
    static func run(advertise: Bool, pages: Int = pages, latency: UInt32 = 2_000,
                    cpl0Read: Bool = false, atFirstFault: Request? = nil) throws -> Outcome {
        let guest = try TestGuest("apf_kernel", ring: 0)
        let lazyPages = pages + (cpl0Read ? 1 : 0)
        try guest.vm.memory.addRegion(name: "lazy", guestAddress: lazyBase, size: UInt64(lazyPages) * 4096, backing: .anonymous)
        let image = snapshot(pages: lazyPages)
        let source = InMemoryPageSource(guestBase: lazyBase, bytes: image, latencyMicroseconds: latency)
        let pager = try DemandPager(memory: guest.vm.memory, region: "lazy", source: source)
        let controller = try AsyncPFController(pager: pager, policy: AsyncPFPolicy(featuresAdvertised: advertise))
        defer { controller.close() }
        try guest.vm.memory.write(0x20158, UInt64(pages))
        if cpl0Read { try guest.vm.memory.write(0x20170, lazyBase + UInt64(pages) * 4096) }
        if let request = atFirstFault {
            try guest.vm.memory.write(0x20180, UInt64(1))
            let asked = Recorder<Bool>()
            try guest.dispatcher.registerPIO(port: 0x12, owner: "test-request") { _, _ in
                guard asked.all.isEmpty else { return .handled }
                asked.append(true)
                do throws(VMMError) {
                    switch request {
                    case .nmi: try controller.requestNMI(vcpuID: 0)
                    case let .pageFault(address, errorCode): try controller.requestPageFault(vcpuID: 0, address: address, errorCode: errorCode)
                    }
                } catch { return .fail("\(error)") }
                return .handled
            }
        }
        try guest.dispatcher.registerPIO(port: 0xf4, owner: "exit") { io, _ in .stop(.guestExit(code: Int32(io.value))) }
        try guest.dispatcher.registerPIO(port: 0xf5, owner: "guest-fatal") { io, vcpu in
            let cr2 = (try? vcpu.memory.read(0x20140, as: UInt64.self)) ?? 0
            return .fail("guest kernel took fatal vector \(io.value & 0xff) (CR2 \(hex(cr2)))")
        }
        try controller.attach(to: guest.vm, dispatcher: guest.dispatcher)
        let reason = try guest.run()
        controller.close()
        let m = guest.vm.memory
        let installed = pager.presentPages == lazyPages
        let regionMatches = try installed && m.readBytes(lazyBase, count: image.count) == image
        return Outcome(
            reason: reason,
            stats: controller.state(of: 0)!.statistics,
            paging: pager.statistics,
            guestNotPresent: try m.read(0x20100), guestReady: try m.read(0x20108), guestAsyncOn: try m.read(0x20150),
            bCounter: try m.read(0x20110),
            bProgress: try (0..<pages).map { try m.read(0x22000 + UInt64($0) * 8) },
            firstLast: try (0..<pages).map { (try m.read(0x21000 + UInt64($0) * 16), try m.read(0x21008 + UInt64($0) * 16)) },
            regionMatches: regionMatches,
            nmiCount: try m.read(0x20188), nmiFlags: try m.read(0x20190), nmiCR2: try m.read(0x20198),
            cpl0Value: try m.read(0x20178), waitToken: try m.read(0x20120), fatalCR2: try m.read(0x20140))
    }

    @Test("With async PF, task B runs while task A's pages are missing; every page arrives intact")
    func asyncPageFaultsLetTheOtherTaskRun() throws {
        let o = try Self.run(advertise: true)
        #expect(o.reason == .guestExit(code: 0))
        #expect(o.guestAsyncOn == 1, "the guest found the CPUID bits and enabled async PF")
        for (i, pair) in o.firstLast.enumerated() {
            #expect(pair.0 == Self.pattern(i, 0) && pair.1 == Self.pattern(i, 511), "page \(i) as task A read it")
        }
        #expect(o.regionMatches, "the lazy region equals the snapshot")
        // Every page took exactly one path: async "not present" + "ready", a synchronous
        // fetch, or (when the vCPU thread could not take the kick within the router's
        // 2 ms, e.g. on a loaded host) the router installing it while the vCPU waited.
        let detail = "\(o.stats) \(o.paging)"
        #expect(o.stats.notPresentInjected + o.stats.synchronousFetches + o.paging.installedByRouter == Self.pages, "\(detail)")
        #expect(o.stats.synchronousFetches == 0 && o.stats.halts == 0, "\(detail)")
        #expect(o.stats.notPresentInjected >= 1, "\(detail)")
        // The guest saw exactly the events the host sent.
        #expect(o.guestNotPresent == UInt64(o.stats.notPresentInjected) && o.guestReady == UInt64(o.stats.readyInjected), "\(detail)")
        #expect(o.stats.readyInjected == o.stats.notPresentInjected)
        #expect(o.paging.kicks == Self.pages && o.paging.pagesFetched == Self.pages, "each fault came through the router's kick")
        #expect(o.bProgress.reduce(0, +) > 0, "task B ran while A waited: \(o.bProgress)")
        #expect(o.bCounter >= o.bProgress.reduce(0, +))
    }

    @Test("Without async PF advertised, the vCPU stalls on every missing page and task B never runs")
    func withoutAsyncPageFaultsTheVCPUStalls() throws {
        let o = try Self.run(advertise: false)
        #expect(o.reason == .guestExit(code: 0))
        #expect(o.guestAsyncOn == 0)
        for (i, pair) in o.firstLast.enumerated() {
            #expect(pair.0 == Self.pattern(i, 0) && pair.1 == Self.pattern(i, 511), "page \(i) as task A read it")
        }
        #expect(o.regionMatches)
        #expect(o.guestNotPresent == 0 && o.guestReady == 0)
        #expect(o.stats.notPresentInjected == 0 && o.stats.readyInjected == 0)
        #expect(o.stats.synchronousFetches + o.paging.installedByRouter == Self.pages, "\(o.stats) \(o.paging)")
        #expect(o.bCounter == 0, "B was never scheduled")
    }

    @Test("Repeated runs leak no fd and no mapping (userfaultfd, router, fetcher and vCPU threads)")
    func noLeaks() throws {
        _ = try Self.run(advertise: true, pages: 2, latency: 100) // warm up process-wide caches (thread stacks)
        let fds = openFDs(), maps = mappingCount()
        for i in 0..<4 { #expect(try Self.run(advertise: i % 2 == 0, pages: 2, latency: 100).reason == .guestExit(code: 0)) }
        #expect(fdsOpened(since: fds) == [])
        #expect(mappingsUnreliable || mappingCount() <= maps) // a leak is growth; fewer is an earlier test's memory given back
    }

    @Test("A CPL-0 access to a missing page is never made async: the router installs it while the vCPU waits")
    func cpl0AccessStaysSynchronous() throws {
        let o = try Self.run(advertise: true, cpl0Read: true)
        #expect(o.reason == .guestExit(code: 0))
        #expect(o.cpl0Value == Self.pattern(Self.pages, 0), "the kernel read the page's real contents")
        #expect(o.paging.installedByRouter >= 1, "\(o.paging)")
        #expect(o.stats.notPresentInjected + o.stats.synchronousFetches + o.paging.installedByRouter == Self.pages + 1, "\(o.stats) \(o.paging)")
        #expect(o.guestNotPresent == UInt64(o.stats.notPresentInjected), "every not-present the guest saw came from task A's faults")
        #expect(o.regionMatches)
    }

    @Test("An NMI requested while an async #PF is unread waits until the guest cleared flags; CR2 is intact")
    func nmiIsDeferredUntilFlagsAreCleared() throws {
        let o = try Self.run(advertise: true, atFirstFault: .nmi)
        #expect(o.reason == .guestExit(code: 0))
        #expect(o.stats.deferredNMIs == 1, "the request came while flags was set: \(o.stats)")
        #expect(o.nmiCount == 1, "delivered exactly once")
        #expect(o.nmiFlags == 0, "the guest had read and cleared flags before the NMI arrived")
        #expect(o.nmiCR2 == 0x1000, "CR2 still held the first async token (vCPU 0, sequence 1), never clobbered")
        for (i, pair) in o.firstLast.enumerated() {
            #expect(pair.0 == Self.pattern(i, 0) && pair.1 == Self.pattern(i, 511), "page \(i) as task A read it")
        }
    }

    @Test("Seed 2's race on real KVM: a real #PF needed while the async one is unread waits; each handler reads its own CR2")
    func realPageFaultIsDeferredUntilFlagsAreCleared() throws {
        let o = try Self.run(advertise: true, atFirstFault: .pageFault(address: 0xdead_0000, errorCode: 2))
        // The guest kernel treats any #PF with flags == 0 as fatal and reports its CR2.
        #expect(o.reason == .handlerFailed("guest kernel took fatal vector 14 (CR2 0xdead0000)"))
        #expect(o.stats.deferredPageFaults == 1, "the request came while flags was set: \(o.stats)")
        #expect(o.waitToken == 0x1000, "the async handler read the token from CR2, not the real address")
        #expect(o.fatalCR2 == 0xdead_0000, "the real #PF arrived after flags was cleared, with its own CR2")
        #expect(o.guestNotPresent == 1 && o.stats.notPresentInjected == 1)
    }
}
