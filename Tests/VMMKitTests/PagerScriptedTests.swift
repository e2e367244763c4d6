import CKVM
import Glibc
import Testing
@testable import VMMKit
@testable import VMMPaging

/// The pager's annotated-fault path, which this host's kernel never produces
/// (KVM_EXIT_MEMORY_FAULT), on a scripted vCPU over detached memory: real userfaultfd,
/// no KVM.
@Suite("Demand pager on a scripted vCPU", .enabled(if: UserfaultfdAvailability.present, UserfaultfdAvailability.reason))
struct PagerScriptedTests {
    final class Setup {
        let memory = GuestMemory.detached()
        let path = "/tmp/vmmkit-scripted-snapshot-\(getpid()).mem"
        let pager: DemandPager
        let script: ScriptedVCPU
        let vcpu: VCPU
        let dispatcher = ExitDispatcher()

        init(_ steps: [ScriptedVCPU.Step], only ranges: [Range<UInt64>]? = nil) throws {
            try memory.addRegion(name: "ram", guestAddress: 0, size: 1 << 20)
            var image = [UInt8](repeating: 0, count: 1 << 20)
            for page in 0..<256 { image[page * 4096 + 5] = UInt8(page) }
            let f = fopen(path, "w")!
            fwrite(image, 1, image.count, f)
            fclose(f)
            pager = try DemandPager(memory: memory, region: "ram", source: SnapshotFilePageSource(path: path), mode: .sigbus, only: ranges)
            script = ScriptedVCPU(steps: steps)
            vcpu = VCPU(id: 0, backend: script, memory: memory)
            try pager.attach(to: dispatcher, vcpus: [vcpu])
        }

        deinit { unlink(path) }
    }

    @Test("an annotated fault installs every page of [gpa, gpa+size) from the source, then the vCPU retries")
    func annotatedRange() throws {
        let s = try Setup([.annotatedFault(gpa: 0x3_0800, size: 0x2000), .hlt])
        #expect(s.vcpu.runLoop(s.dispatcher) == .halted)
        #expect(s.pager.statistics.pagesFetched == 3)
        #expect(try s.memory.readBytes(0x3_0005, count: 1) == [0x30])
        #expect(try s.memory.readBytes(0x3_2005, count: 1) == [0x32])
    }

    @Test("only the ranges a page source covers are paged: the rest is the kernel's demand-zero memory, never fetched")
    func onlyRanges() throws {
        let s = try Setup([.annotatedFault(gpa: 0x3_0800, size: 8), .annotatedFault(gpa: 0x5_0000, size: 8), .hlt],
                          only: [0x3_0000..<0x3_1000, 0x3_1800..<0x3_2001, 0x10_0000..<0x20_0000])
        #expect(s.pager.pagedPages == 3)
        // Outside the ranges the host reads zeros straight from the kernel (in SIGBUS mode
        // a registered missing page would raise SIGBUS instead).
        #expect(try s.memory.read(0x5_0008, as: UInt64.self) == 0)
        #expect(s.vcpu.runLoop(s.dispatcher) == .halted)
        #expect(s.pager.statistics.pagesFetched == 1)
        #expect(try s.memory.readBytes(0x3_0005, count: 1) == [0x30])
        #expect(try s.memory.readBytes(0x5_0005, count: 1) == [0], "not from the snapshot")
    }

    @Test("EHWPOISON is a typed hardware-poison stop: no page installed, not retried")
    func hwPoison() throws {
        let s = try Setup([.annotatedFault(errno: EHWPOISON, gpa: 0x5_0000, size: 0x1000), .hlt])
        #expect(s.vcpu.runLoop(s.dispatcher) == .hardwarePoison(
            location: MemoryFault.Location(gpa: 0x5_0000, size: 0x1000),
            diagnosis: "hardware-poisoned memory at guest-physical 0x50000 (4096 bytes, flags 0x0), EHWPOISON (errno 133), vCPU 0 at RIP 0x0: no handler replaced the backing; last exits (oldest first): rc -1 EHWPOISON (errno 133): memory fault at guest-physical 0x50000, 4096 bytes"))
        #expect(s.pager.statistics.pagesFetched == 0)
        #expect(s.script.entries == 1)
    }

    @Test("an MMIO read exit inside RAM completes with the bytes of the installed page")
    func mmioInRAM() throws {
        let s = try Setup([.mmio(address: 0x7_0004, length: 2, isWrite: false), .mmio(address: 0x7_0010, length: 4, isWrite: true, data: 0xdead_beef), .hlt])
        #expect(s.vcpu.runLoop(s.dispatcher) == .halted)
        // Entry 1 carries the completion in mmio.data: bytes 4..5 of page 0x70 (index 0x70).
        #expect(Array(s.script.entrySnapshots[1][40..<42]) == [0x00, 0x70])
        #expect(try s.memory.read(0x7_0010, as: UInt32.self) == 0xdead_beef)
        #expect(s.pager.statistics.pagesFetched == 1)
    }
}
