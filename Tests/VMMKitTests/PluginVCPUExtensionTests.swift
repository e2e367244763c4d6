import Testing
@testable import VMMKit

/// ABI 1.1's vcpu/1 and pager/1 extensions from a C plugin (Tests/PluginFixtures/
/// kick_plugin.c): a kick from the plugin's own thread gets a spinning vCPU out of the
/// guest and raises a KICK record on the vCPU's thread, where the vCPU services work.
@Suite("Plugin vcpu/1 and pager/1 extensions on real KVM", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct PluginVCPUExtensionTests {
    @Test("kick from another thread reaches the vCPU thread as KICK; pending_events, inject_nmi; pager/1 without a pager")
    func kickAndVCPUServices() throws {
        let (guest, host) = try PluginFixtures.guest("spin")
        defer { host.close() }
        try host.load(PluginFixtures.fixture("Kicker"))
        // Every check of the fixture passed: see the bit list in kick_plugin.c.
        #expect(try guest.run() == .guestExit(code: 0x3f))
    }

    @Test("a plugin that routes an MSR and edits CPUID, then fails its init, leaves neither behind")
    func failedInitUndoesMSRsAndCPUID() throws {
        let (guest, host) = try PluginFixtures.guest("spin")
        defer { host.close() }
        // mov ecx, 0x10; rdmsr (the TSC, which KVM answers itself unless routed); hlt
        try guest.vm.memory.writeBytes(GuestLayout.codeStart, [0xb9, 0x10, 0, 0, 0, 0x0f, 0x32, 0xf4])
        func kvmFeatures() throws -> UInt32? { try guest.vcpu.cpuid().first { $0.function == 0x4000_0001 }?.eax }
        let before = try #require(try kvmFeatures())
        #expect(before & 1 << 20 == 0, "the fixture sets a bit that is clear")
        var error: (any Error)?
        do { try host.load(PluginFixtures.fixture("INIT_FAILS"), config: "route") } catch let e { error = e }
        #expect("\(error.map { "\($0)" } ?? "")".hasSuffix("init failed: fixture: routed MSR 0x10 and edited CPUID, then failed"), "\(String(describing: error))")
        #expect(try kvmFeatures() == before)
        #expect(host.routedMSRs.isEmpty)
        #expect(try guest.run() == .halted)
    }

    @Test("set_cpuid_bits: the guest sees the bits the plugin set and cleared; route_msrs holds the three MSRs")
    func msrsAndCPUID() throws {
        let (guest, host) = try PluginFixtures.guest("apf_cpuid")
        defer { host.close() }
        // AsyncPF routes the three MSRs and sets the bits; the guest stores CPUID 0x40000001.EAX.
        try host.load("AsyncPF")
        #expect(try guest.run() == .halted)
        let eax = try guest.vm.memory.read(0x20000, as: UInt32.self)
        #expect(eax & (AsyncPFABI.featureAsyncPF | AsyncPFABI.featureAsyncPFInt) == AsyncPFABI.featureAsyncPF | AsyncPFABI.featureAsyncPFInt)
        #expect(eax & AsyncPFABI.featureAsyncPFVMExit == 0, "withdrawn by the plugin")
        #expect(try guest.vm.vcpus[0].cpuid().first { $0.function == AsyncPFABI.featuresLeaf }?.eax == eax)
        #expect(host.routedMSRs.sorted() == AsyncPFABI.msrs.sorted())
    }
}
