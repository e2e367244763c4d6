import Glibc
import Testing
@testable import VMMKit
@testable import VMMPaging

/// The fault router's bookkeeping of faults it posted to vCPUs (`DemandPager.post`,
/// `wasTaken`, `withdraw`), in the order the router and a vCPU thread used them when a
/// lazily restored async-PF guest hung (CI25): the vCPU took a posted fault on page P,
/// the AsyncPF plugin then read the guest's flags on page Q from the same thread (in
/// user space, Q missing), the router posted Q and, in the same pass, expired P's post.
/// Per vCPU, that expiry withdrew Q's post; Q's second message then passed for "taken"
/// and was folded, and the thread waited on Q for ever.
@Suite("Demand pager: faults posted to a vCPU, per page", .enabled(if: UserfaultfdAvailability.present, UserfaultfdAvailability.reason))
struct FaultPostTests {
    final class Setup {
        let memory = GuestMemory.detached()
        let pager: DemandPager
        let vcpu: VCPU

        init() throws {
            try memory.addRegion(name: "ram", guestAddress: 0, size: 1 << 20)
            pager = try DemandPager(memory: memory, region: "ram", source: ZeroPages(), mode: .sigbus)
            vcpu = VCPU(id: 0, backend: ScriptedVCPU(steps: [.hlt]), memory: memory)
        }
    }

    final class ZeroPages: PageSource {
        var name: String { "zero pages" }
        func readPage(at gpa: UInt64, into buffer: UnsafeMutableRawBufferPointer, for request: PageRequest) throws(VMMError) {
            buffer.initializeMemory(as: UInt8.self, repeating: 0)
        }
    }

    let p: UInt64 = 0x3000, q: UInt64 = 0x2_0000

    @Test("a fault taken, then a second posted: expiring the first leaves the second posted")
    func expiryKeepsTheLaterPost() throws {
        let s = try Setup()
        s.pager.post(p, to: s.vcpu)
        #expect(s.pager.takePosted(for: s.vcpu) != nil, "the vCPU takes P")
        s.pager.post(q, to: s.vcpu)
        // The router's expiry of P: taken, so nothing to withdraw; a withdraw names its page.
        #expect(s.pager.wasTaken(p, by: s.vcpu.id))
        s.pager.withdraw(p, from: s.vcpu.id)
        // Q's second message: not taken, so the router resolves it (folding it hung the vCPU).
        #expect(!s.pager.wasTaken(q, by: s.vcpu.id))
        s.pager.withdraw(q, from: s.vcpu.id)
        #expect(s.pager.wasTaken(q, by: s.vcpu.id))
        #expect(s.pager.takePosted(for: s.vcpu) == nil)
    }

    @Test("a post that replaced an untaken one: the first counts as taken (its fault is retried), the second stays")
    func replacedPost() throws {
        let s = try Setup()
        s.pager.post(p, to: s.vcpu)
        s.pager.post(q, to: s.vcpu)
        #expect(s.pager.wasTaken(p, by: s.vcpu.id))
        s.pager.withdraw(p, from: s.vcpu.id)
        #expect(!s.pager.wasTaken(q, by: s.vcpu.id))
        guard case let .memoryFault(fault)? = s.pager.takePosted(for: s.vcpu) else {
            Issue.record("Q's post was lost")
            return
        }
        #expect(fault.location?.gpa == q)
    }
}
