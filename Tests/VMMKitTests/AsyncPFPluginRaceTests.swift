import Testing
@testable import VMMKit

/// Seed 2's race through the loaded plugin: the VMM asks the plugin (its
/// vmm_async_pf_events_t extension) for an NMI or a real #PF at the moment the guest
/// has an async "not present" it has not read yet (its #PF handler exits before
/// clearing `flags`). The plugin must hold it back; CR2 is never clobbered.
@Suite("Async PF plugin: seed 2's race on real KVM", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct AsyncPFPluginRaceTests {
    typealias E2E = AsyncPFEndToEndTests

    @Test("An NMI requested while an async #PF is unread waits until the guest cleared flags; CR2 is intact")
    func nmiIsDeferredUntilFlagsAreCleared() throws {
        let o = try AsyncPFPluginTests.run(atFirstFault: .nmi)
        #expect(o.reason == .guestExit(code: 0))
        #expect(o.stats["deferred NMI"] == 1, "the request came while flags was set: \(o.stats)")
        #expect(o.nmiCount == 1, "delivered exactly once")
        #expect(o.nmiFlags == 0, "the guest had read and cleared flags before the NMI arrived")
        #expect(o.nmiCR2 == 0x1000, "CR2 still held the first async token (vCPU 0, sequence 1), never clobbered")
        for (i, pair) in o.firstLast.enumerated() {
            #expect(pair.0 == E2E.pattern(i, 0) && pair.1 == E2E.pattern(i, 511), "page \(i) as task A read it")
        }
    }

    @Test("A real #PF requested while the async one is unread waits; each handler reads its own CR2")
    func realPageFaultIsDeferredUntilFlagsAreCleared() throws {
        let o = try AsyncPFPluginTests.run(atFirstFault: .pageFault(address: 0xdead_0000, errorCode: 2))
        // The guest kernel treats any #PF with flags == 0 as fatal and reports its CR2.
        #expect(o.reason == .handlerFailed("guest kernel took fatal vector 14 (CR2 0xdead0000)"))
        #expect(o.stats["deferred #PF"] == 1, "the request came while flags was set: \(o.stats)")
        #expect(o.waitToken == 0x1000, "the async handler read the token from CR2, not the real address")
        #expect(o.fatalCR2 == 0xdead_0000, "the real #PF arrived after flags was cleared, with its own CR2")
        #expect(o.guestNotPresent == 1 && o.stats["not-present"] == 1, "\(o.stats)")
    }
}
