import CAsyncPFPlugin
import Testing
import VMMAsyncPF
@testable import VMMKit
import VMMPaging

/// The same two-task guest kernel as AsyncPFEndToEndTests, with async PF delivered by
/// the dlopen'd plugin (Plugins/AsyncPF, ABI 1.1) instead of the in-process controller:
/// the host raises PAGE_MISSING from the demand pager's fault path, the plugin injects
/// "not present" and asks pager/1 for a background install, and "ready" comes back as
/// PAGE_READY on the vCPU thread.
@Suite("Async PF through the loaded plugin on real KVM", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct AsyncPFPluginTests {
    typealias E2E = AsyncPFEndToEndTests

    struct Outcome {
        let reason: StopReason
        /// The plugin's statistics line for vCPU 0, logged at destroy.
        let stats: [String: Int]
        let paging: DemandPager.Statistics
        let guestNotPresent, guestReady, guestAsyncOn, bCounter: UInt64
        let bProgress: [UInt64]
        let firstLast: [(UInt64, UInt64)]
        let regionMatches: Bool
        /// The qword the kernel read at CPL 0 from the extra lazy page, if asked to.
        let cpl0Value: UInt64
        /// What the guest's NMI handler recorded (count, flags, CR2); the token task A
        /// waits on and the CR2 of a #PF the guest treated as real (see E2E.Outcome).
        let nmiCount, nmiFlags, nmiCR2, waitToken, fatalCR2: UInt64
    }

    /// "vCPU 0: not-present 5, ready 5, ..." -> ["not-present": 5, "ready": 5, ...]
    static func parse(_ line: String) -> [String: Int] {
        var out: [String: Int] = [:]
        for item in line.drop(while: { $0 != ":" }).dropFirst().split(separator: ",") {
            let words = item.split(separator: " ")
            if let n = words.last.flatMap({ Int($0) }) { out[words.dropLast().joined(separator: " ")] = n }
        }
        return out
    }

    /// `cpl0Read`: the kernel also reads an extra lazy page at CPL 0 while booting.
    /// `atFirstFault`: the guest's #PF handler exits before clearing `flags` and the test
    /// asks the plugin (vmm_async_pf_events_t) for an NMI or a real #PF right then.
    static func run(config: String = "", pages: Int = E2E.pages, latency: UInt32 = 2_000, cpl0Read: Bool = false,
                    atFirstFault: E2E.Request? = nil) throws -> Outcome {
        precondition(PluginFixtures.built, "scripts/build-plugins failed")
        let guest = try TestGuest("apf_kernel", ring: 0)
        let lazyPages = pages + (cpl0Read ? 1 : 0)
        try guest.vm.memory.addRegion(name: "lazy", guestAddress: E2E.lazyBase, size: UInt64(lazyPages) * 4096, backing: .anonymous)
        let image = E2E.snapshot(pages: lazyPages)
        let source = InMemoryPageSource(guestBase: E2E.lazyBase, bytes: image, latencyMicroseconds: latency)
        let pager = try DemandPager(memory: guest.vm.memory, region: "lazy", source: source)
        try guest.vm.memory.write(0x20158, UInt64(pages))
        if cpl0Read { try guest.vm.memory.write(0x20170, E2E.lazyBase + UInt64(pages) * 4096) }
        try guest.dispatcher.registerPIO(port: 0xf4, owner: "exit") { io, _ in .stop(.guestExit(code: Int32(io.value))) }
        try guest.dispatcher.registerPIO(port: 0xf5, owner: "guest-fatal") { io, vcpu in
            let cr2 = (try? vcpu.memory.read(0x20140, as: UInt64.self)) ?? 0
            return .fail("guest kernel took fatal vector \(io.value & 0xff) (CR2 \(hex(cr2)))")
        }
        let plugins = PluginHost(vm: guest.vm, dispatcher: guest.dispatcher)
        let lines = Recorder<String>()
        plugins.logHandler = { _, id, message in if id == "org.vmmkit.async-pf" { lines.append(message) } }
        try plugins.load("AsyncPF", config: config)
        if let request = atFirstFault {
            let raw = try #require(plugins.pluginExtension(VMM_ASYNC_PF_PLUGIN_EVENTS))
            let events = raw.assumingMemoryBound(to: vmm_async_pf_events_t.self).pointee
            try guest.vm.memory.write(0x20180, UInt64(1))
            let asked = Recorder<Int32>()
            try guest.dispatcher.registerPIO(port: 0x12, owner: "test-request") { _, _ in
                guard asked.all.isEmpty else { return .handled }
                switch request {
                case .nmi: asked.append(events.request_nmi(events.instance, 0))
                case let .pageFault(address, errorCode): asked.append(events.request_page_fault(events.instance, 0, address, errorCode))
                }
                return asked.all == [0] ? .handled : .fail("the plugin refused the request: \(asked.all)")
            }
        }
        try pager.attach(to: guest.dispatcher, vcpus: guest.vm.vcpus)
        let bridge = try PluginAsyncPF(pager: pager)
        try bridge.attach(to: plugins)
        let reason = try guest.run()
        bridge.close()
        pager.close()
        plugins.close()
        let m = guest.vm.memory
        let regionMatches = try pager.presentPages == lazyPages && m.readBytes(E2E.lazyBase, count: image.count) == image
        return Outcome(
            reason: reason, stats: parse(lines.all.first { $0.hasPrefix("vCPU 0:") } ?? ""), paging: pager.statistics,
            guestNotPresent: try m.read(0x20100), guestReady: try m.read(0x20108), guestAsyncOn: try m.read(0x20150),
            bCounter: try m.read(0x20110),
            bProgress: try (0..<pages).map { try m.read(0x22000 + UInt64($0) * 8) },
            firstLast: try (0..<pages).map { (try m.read(0x21000 + UInt64($0) * 16), try m.read(0x21008 + UInt64($0) * 16)) },
            regionMatches: regionMatches, cpl0Value: try m.read(0x20178),
            nmiCount: try m.read(0x20188), nmiFlags: try m.read(0x20190), nmiCR2: try m.read(0x20198),
            waitToken: try m.read(0x20120), fatalCR2: try m.read(0x20140))
    }

    @Test("Through the plugin, task B runs while task A's pages are missing; every page arrives intact")
    func pluginLetsTheOtherTaskRun() throws {
        let o = try Self.run()
        #expect(o.reason == .guestExit(code: 0))
        #expect(o.guestAsyncOn == 1, "the guest found the plugin's CPUID bits and enabled async PF")
        for (i, pair) in o.firstLast.enumerated() {
            #expect(pair.0 == E2E.pattern(i, 0) && pair.1 == E2E.pattern(i, 511), "page \(i) as task A read it")
        }
        #expect(o.regionMatches, "the lazy region equals the snapshot")
        let notPresent = o.stats["not-present"] ?? -1, ready = o.stats["ready"] ?? -1
        let detail = "\(o.stats) \(o.paging)"
        // Each page: async (not present + ready), synchronous, or installed by the router
        // when the vCPU thread could not take the kick in time (loaded host).
        #expect(notPresent + (o.stats["synchronous"] ?? 0) + o.paging.installedByRouter == E2E.pages, "\(detail)")
        #expect(notPresent >= 1 && o.stats["halts"] == 0, "\(detail)")
        #expect(o.guestNotPresent == UInt64(notPresent) && o.guestReady == UInt64(ready), "the guest saw what the plugin sent: \(detail)")
        #expect(ready == notPresent, "\(detail)")
        #expect(o.paging.pagesFetched == E2E.pages)
        #expect(o.bProgress.reduce(0, +) > 0, "task B ran while A waited: \(o.bProgress)")
        #expect(o.bCounter >= o.bProgress.reduce(0, +))
    }

    @Test("A CPL-0 access never reaches the plugin: the router installs the page while the vCPU waits")
    func cpl0AccessStaysSynchronous() throws {
        let o = try Self.run(cpl0Read: true)
        #expect(o.reason == .guestExit(code: 0))
        #expect(o.cpl0Value == E2E.pattern(E2E.pages, 0), "the kernel read the page's real contents")
        #expect(o.paging.installedByRouter >= 1, "\(o.paging)")
        let notPresent = o.stats["not-present"] ?? -1
        #expect(notPresent + (o.stats["synchronous"] ?? 0) + o.paging.installedByRouter == E2E.pages + 1, "\(o.stats) \(o.paging)")
        #expect(o.guestNotPresent == UInt64(notPresent), "every not-present the guest saw came from task A's faults")
        #expect(o.regionMatches)
    }

    @Test("advertise=0: the plugin withdraws the CPUID bits, the guest stalls on every page and B never runs")
    func withoutTheCPUIDBitsTheVCPUStalls() throws {
        let o = try Self.run(config: "advertise=0")
        #expect(o.reason == .guestExit(code: 0))
        #expect(o.guestAsyncOn == 0)
        #expect(o.regionMatches)
        #expect(o.guestNotPresent == 0 && o.guestReady == 0 && o.bCounter == 0)
        #expect(o.stats["not-present"] ?? 0 == 0, "\(o.stats)")
    }

    @Test("Repeated runs through the plugin leak no fd and no mapping (userfaultfd, router, fetcher, plugin instance)")
    func noLeaks() throws {
        _ = try Self.run(pages: 2, latency: 100) // warm up process-wide caches (thread stacks, the dlopen)
        let fds = openFDs(), maps = mappingCount()
        for i in 0..<4 { #expect(try Self.run(config: i % 2 == 0 ? "" : "advertise=0", pages: 2, latency: 100).reason == .guestExit(code: 0)) }
        #expect(fdsOpened(since: fds) == [])
        #expect(mappingsUnreliable || mappingCount() <= maps) // a leak is growth; fewer is an earlier test's memory given back
    }

    @Test("Unknown config keys and bad values are refused, naming the key")
    func refusals() throws {
        let (guest, plugins) = try PluginFixtures.guest("apf_kernel")
        _ = guest
        let unknown = pluginError { () throws(PluginError) in try plugins.load("AsyncPF", config: "send_always=1") }
        #expect(unknown?.description.contains("init failed: org.vmmkit.async-pf: unknown key 'send_always' (known keys: send_always_cpl0, conflict_bound, advertise)") == true,
                "\(String(describing: unknown))")
        let bound = pluginError { () throws(PluginError) in try plugins.load("AsyncPF", config: "conflict_bound=0") }
        #expect(bound?.description.contains("org.vmmkit.async-pf: conflict_bound=0 is out of range (1 to 1000000 exits)") == true,
                "\(String(describing: bound))")
        let flag = pluginError { () throws(PluginError) in try plugins.load("AsyncPF", config: "send_always_cpl0=yes") }
        #expect(flag?.description.contains("bad value 'yes' for key 'send_always_cpl0' (0 or 1)") == true, "\(String(describing: flag))")
        #expect(plugins.plugins.isEmpty, "nothing of a refused plugin stays loaded")
    }

    @Test("A state blob no guest could have left through the MSRs is refused in one line naming vCPU and field; the plugin's own state restores")
    func hostileStateBlobs() throws {
        let (guest, plugins) = try PluginFixtures.guest("apf_kernel")
        defer { plugins.close(); withExtendedLifetime(guest) {} }
        try plugins.load("AsyncPF")
        try plugins.restoreStateBlobs(try plugins.saveStateBlobs())

        // The blob format of Plugins/AsyncPF/Sources/AsyncPFPluginState.swift, version 1.
        struct Slot {
            var vcpu: UInt32 = 0, enable: UInt64 = 0, vector: UInt8? = nil
            var outstanding: [(UInt32, UInt64)] = [], readyQueue: [UInt32] = [], pendingVector: UInt8? = nil
        }
        func blob(_ slots: [Slot]) -> [UInt8] {
            var b: [UInt8] = []
            func u32(_ v: UInt32) { b += withUnsafeBytes(of: v.littleEndian, Array.init) }
            func u64(_ v: UInt64) { b += withUnsafeBytes(of: v.littleEndian, Array.init) }
            func opt(_ v: UInt8?) { if let v { b += [1, v] } else { b.append(0) } }
            u32(UInt32(slots.count))
            for s in slots {
                u32(s.vcpu); u64(s.enable); opt(s.vector)
                b.append(0) // no "not present" in flight
                u32(UInt32(s.outstanding.count)); for (t, page) in s.outstanding { u32(t); u64(page) }
                b.append(0) // no ready pending
                u32(UInt32(s.readyQueue.count)); for t in s.readyQueue { u32(t) }
                b += [0, 0, 0] // no deferred #PF, no deferred NMI, not halted on a page
                u32(0); u32(1) // conflict exits, next token
                opt(s.pendingVector); b.append(0) // waiting vector, halted
            }
            return b
        }
        let area: UInt64 = 0x20000
        let cases: [([Slot], String)] = [
            ([Slot(vector: 5)], "vCPU 0: MSR_KVM_ASYNC_PF_INT vector 5 is an exception vector"),
            ([Slot(enable: area | 0x11, vector: 0xec)], "vCPU 0: MSR_KVM_ASYNC_PF_EN 0x20011 has reserved bits 5:4 set"),
            ([Slot(enable: area | 0x5, vector: 0xec)], "vCPU 0: MSR_KVM_ASYNC_PF_EN 0x20005 asks for delivery as #PF vmexit, which is not offered"),
            ([Slot(enable: area | 0x9)], "vCPU 0: MSR_KVM_ASYNC_PF_EN 0x20009 enables interrupt delivery with no vector set"),
            ([Slot(vcpu: 3), Slot(vcpu: 3)], "state holds vCPU 3 twice"),
            ([Slot(outstanding: [(0x7000, 0x40_0000), (0x7000, 0x40_1000)])], "vCPU 0: outstanding token 0x7000 twice"),
            ([Slot(outstanding: [(0, 0x40_0000)])], "vCPU 0: token 0x0 is not one this vCPU makes (not 0 or 0xffffffff, its low 12 bits 0x0)"),
            ([Slot(vcpu: 1, outstanding: [(0x7002, 0x40_0000)])], "vCPU 1: token 0x7002 is not one this vCPU makes (not 0 or 0xffffffff, its low 12 bits 0x1)"),
            ([Slot(outstanding: [(0x7000, 0x40_0000)], readyQueue: [0x7000])], "vCPU 0: token 0x7000 is in two places (outstanding, the ready queue, the pending ready)"),
            ([Slot(vector: 0xec, pendingVector: 2)], "vCPU 0: waiting interrupt vector 2 is an exception vector"),
            ([Slot(outstanding: (1...40).map { ($0 << 12, UInt64($0) << 12) }, readyQueue: (41...65).map { $0 << 12 })],
             "vCPU 0: 65 tokens wait (outstanding or queued as ready), more than the 64 a vCPU has at once"),
        ]
        for (slots, reason) in cases {
            let e = pluginError { () throws(PluginError) in
                try plugins.restoreStateBlobs([PluginStateBlob(plugin: "org.vmmkit.async-pf", version: 1, bytes: blob(slots))])
            }
            #expect(e?.message == "refused its saved state: org.vmmkit.async-pf: \(reason)", "\(String(describing: e))")
        }
        // The same encoder's well-formed blob is taken, and saves back as it was.
        let good = blob([Slot(vcpu: 0, enable: area | 0x9, vector: 0xec, readyQueue: [0x1000, 0x2000])])
        try plugins.restoreStateBlobs([PluginStateBlob(plugin: "org.vmmkit.async-pf", version: 1, bytes: good)])
        #expect(try plugins.saveStateBlobs().first?.bytes == good)
    }

    @Test("Before any vCPU exists the plugin is refused: CPUID bits cannot be set")
    func refusedWithoutVCPUs() throws {
        let kvm = try KVM.open()
        let vm = try kvm.createVM()
        defer { vm.close() }
        let plugins = PluginHost(vm: vm, dispatcher: ExitDispatcher())
        let error = pluginError { () throws(PluginError) in try plugins.load("AsyncPF") }
        #expect(error?.description.contains("org.vmmkit.async-pf: cannot set the async PF CPUID bits: ") == true, "\(String(describing: error))")
        #expect(error?.description.contains("the VM has no vCPU yet") == true, "\(String(describing: error))")
    }
}
