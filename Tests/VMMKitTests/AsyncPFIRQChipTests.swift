import CAsyncPFPlugin
import Testing
import VMMAsyncPF
@testable import VMMKit
import VMMPaging

/// Async page faults with the in-kernel irqchip (issue 15): KVM takes a ring-3 fault on a
/// userfaultfd page itself (its own async PF: a kernel worker faults on the page, the
/// vCPU halts in the kernel). These tests say what the guest sees then.
@Suite("Async PF with the in-kernel irqchip on real KVM", .serialized, .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct AsyncPFIRQChipTests {
    typealias E2E = AsyncPFEndToEndTests

    struct Outcome {
        let reason: StopReason
        let stats: [String: Int]
        let paging: DemandPager.Statistics
        let guestNotPresent, guestReady, guestAsyncOn, bCounter: UInt64
        let bProgress: [UInt64]
        let regionMatches: Bool
    }

    static func run(plugin: Bool, pages: Int = E2E.pages, latency: UInt32 = 2_000) throws -> Outcome {
        precondition(PluginFixtures.built, "scripts/build-plugins failed")
        let guest = try TestGuest("apf_kernel", ring: 0, irqchip: true)
        try guest.vm.memory.addRegion(name: "lazy", guestAddress: E2E.lazyBase, size: UInt64(pages) * 4096, backing: .anonymous)
        let image = E2E.snapshot(pages: pages)
        let source = InMemoryPageSource(guestBase: E2E.lazyBase, bytes: image, latencyMicroseconds: latency)
        let pager = try DemandPager(memory: guest.vm.memory, region: "lazy", source: source)
        try guest.vm.memory.write(0x20158, UInt64(pages))
        try guest.vm.memory.write(0x201c0, UInt64(1))   // in-kernel LAPIC: enable it, EOI "ready"
        try guest.dispatcher.registerPIO(port: 0xf4, owner: "exit") { io, _ in .stop(.guestExit(code: Int32(io.value))) }
        try guest.dispatcher.registerPIO(port: 0xf5, owner: "guest-fatal") { io, vcpu in
            let cr2 = (try? vcpu.memory.read(0x20140, as: UInt64.self)) ?? 0
            return .fail("guest kernel took fatal vector \(io.value & 0xff) (CR2 \(hex(cr2)))")
        }
        let plugins = PluginHost(vm: guest.vm, dispatcher: guest.dispatcher)
        let lines = Recorder<String>()
        plugins.logHandler = { _, id, message in if id == "org.vmmkit.async-pf" { lines.append(message) } }
        var bridge: PluginAsyncPF?
        if plugin {
            try plugins.load("AsyncPF", config: "")
        } else {
            try guest.vcpu.advertiseAsyncPF()
        }
        try pager.attach(to: guest.dispatcher, vcpus: guest.vm.vcpus)
        if plugin {
            bridge = try PluginAsyncPF(pager: pager)
            try bridge!.attach(to: plugins)
        }
        let reason = try guest.run()
        bridge?.close()
        pager.close()
        plugins.close()
        let m = guest.vm.memory
        let regionMatches = try pager.presentPages == pages && m.readBytes(E2E.lazyBase, count: image.count) == image
        return Outcome(
            reason: reason, stats: AsyncPFPluginTests.parse(lines.all.first { $0.hasPrefix("vCPU 0:") } ?? ""), paging: pager.statistics,
            guestNotPresent: try m.read(0x20100), guestReady: try m.read(0x20108), guestAsyncOn: try m.read(0x20150),
            bCounter: try m.read(0x20110),
            bProgress: try (0..<pages).map { try m.read(0x22000 + UInt64($0) * 8) },
            regionMatches: regionMatches)
    }

    @Test("in-kernel irqchip, AsyncPF plugin: KVM's worker faults are handed to the halted vCPU, the guest gets not present/ready and task B runs while A waits")
    func pluginGetsKernelWorkerFaults() throws {
        let o = try Self.run(plugin: true)
        let detail = "\(o.stats) \(o.paging)"
        #expect(o.reason == .guestExit(code: 0))
        #expect(o.guestAsyncOn == 1 && o.regionMatches, "\(detail)")
        let notPresent = o.stats["not-present"] ?? -1, ready = o.stats["ready"] ?? -1
        // Each page: async, synchronous, or installed by the router (no sleeping vCPU
        // found in time, or the post aged out on a loaded host).
        #expect(notPresent + (o.stats["synchronous"] ?? 0) + o.paging.installedByRouter == E2E.pages, "\(detail)")
        #expect(notPresent >= 1 && ready == notPresent && o.stats["halts"] == 0, "\(detail)")
        // Without the hand-over KVM halted the vCPU in the kernel: no kicks, no async PF.
        #expect(o.paging.kernelWorkerFaults >= notPresent && o.paging.kicks >= o.paging.kernelWorkerFaults, "\(detail)")
        #expect(o.guestNotPresent == UInt64(notPresent) && o.guestReady == UInt64(ready), "the guest saw what the plugin sent: \(detail)")
        #expect(o.bProgress.reduce(0, +) > 0, "task B ran while A waited: \(o.bProgress)")
    }

    /// The alternative: the async-PF MSRs left to KVM (no plugin, no MSR filter). KVM's
    /// own PV async PF works on kvm_pvm too, but bypasses the plugin (its counters, its
    /// snapshot state, its hooks); the launcher keeps the plugin and hands faults over.
    @Test("in-kernel irqchip, no plugin: KVM's own PV async PF reaches the guest when it enabled the MSRs in KVM")
    func kvmOwnAsyncPF() throws {
        let o = try Self.run(plugin: false)
        #expect(o.reason == .guestExit(code: 0))
        #expect(o.guestAsyncOn == 1 && o.regionMatches)
        #expect(o.paging.kicks == 0 && o.paging.kernelWorkerFaults == 0, "\(o.paging)")
        #expect(o.guestNotPresent >= 1 && o.guestReady >= o.guestNotPresent, "\(o.guestNotPresent) not present, \(o.guestReady) ready")
        #expect(o.bProgress.reduce(0, +) > 0, "task B ran while A waited: \(o.bProgress)")
    }
}
