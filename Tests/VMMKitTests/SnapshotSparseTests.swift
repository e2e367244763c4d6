import Foundation
import Glibc
import Testing
import VMMAsyncPF
@testable import VMMKit
@testable import VMMPaging
@testable import VMMSnapshot

/// Sparse memory writing on real KVM: a large guest that touched a few pages is saved
/// without the writer touching the rest (a memfd does not grow, anonymous memory gets
/// no new mappings), and a lazily restored VM saved again copies the pages it has not
/// paged in yet from the old snapshot instead of faulting them in.
@Suite("Sparse snapshot memory on real KVM", .serialized, .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct SnapshotSparseTests {
    static let memoryMiB: UInt64 = 256

    /// Bytes of `region` the kernel holds: a memfd's allocated blocks, or the pages of
    /// an anonymous mapping that are mapped (the zero page included).
    static func residentBytes(_ region: MemoryRegion) -> Int {
        if region.fd >= 0 {
            var st = stat()
            return fstat(region.fd, &st) == 0 ? Int(st.st_blocks) * 512 : -1
        }
        var vector = [UInt8](repeating: 0, count: Int(region.size / GuestMemory.pageSize))
        guard mincore(region.hostAddress, Int(region.size), &vector) == 0 else { return -1 }
        return vector.lazy.filter { $0 & 1 != 0 }.count * Int(GuestMemory.pageSize)
    }

    /// The memory file is the guest's size but holds a few hundred KiB.
    static func expectSparse(_ dir: String) {
        var st = stat()
        #expect(stat(dir + "/memory.bin", &st) == 0 && UInt64(st.st_size) == memoryMiB << 20)
        #expect(Int(st.st_blocks) * 512 < 2 << 20, "memory.bin allocates \(Int(st.st_blocks) * 512) bytes")
    }

    /// Runs a 256 MiB one-vCPU guest to its gate and saves it; returns what the region
    /// held before and after the save.
    static func saveAtGate(_ backing: MemoryRegion.Backing, to dir: String) throws -> (before: Int, after: Int) {
        let g = try SnapshotGuest(vcpus: 1, memoryMiB: memoryMiB, backing: backing, released: false)
        defer { g.guest.vm.close() }
        for vcpu in g.guest.vm.vcpus { try vcpu.start(g.guest.dispatcher) }
        try #require(g.waitAtGate(), "the guest never reached its gate")
        for vcpu in g.guest.vm.vcpus { vcpu.pause() }
        let region = try #require(g.guest.vm.memory.regions.first)
        let before = residentBytes(region)
        try VMSnapshot.save(g.guest.vm, dispatcher: g.guest.dispatcher, to: dir)
        return (before, residentBytes(region))
    }

    @Test("a 256 MiB guest that touched a few pages is saved without touching the others; the snapshot restores to the same output",
          arguments: [MemoryRegion.Backing.memfd, .anonymous])
    func untouchedPagesStayUntouched(backing: MemoryRegion.Backing) throws {
        let full = try SnapshotTests.uninterrupted(vcpus: 1, irqchip: false, pit: false)
        let scratch = ScratchDir("sparse")
        let dir = scratch.sub("snap")
        let (before, after) = try Self.saveAtGate(backing, to: dir)
        #expect(before > 0 && before < 16 << 20, "the guest holds \(before) bytes before the save")
        // Equal here (THP is madvise-only); a host that collapses transparent huge
        // pages in the background may add a few 2 MiB pages meanwhile, never 256 MiB.
        #expect(after >= before && after - before <= 8 << 20, "the save made the region hold \(after) bytes instead of \(before)")
        Self.expectSparse(dir)
        let r = try RunnerResult.restore(dir)
        #expect(r.status == 0 && r.stderr == "", "\(r.stderr)")
        #expect(r.reports[0] == Array(full[0]!.dropFirst(Int(SnapshotGuest.gate))))
    }

    @Test("a lazily restored VM saved again pages nothing in: its missing pages come from the old snapshot, and the new one restores to the same output",
          arguments: [MemoryRegion.Backing.memfd, .anonymous])
    func resaveOfLazyRestore(backing: MemoryRegion.Backing) throws {
        let full = try SnapshotTests.uninterrupted(vcpus: 1, irqchip: false, pit: false)
        let scratch = ScratchDir("resave")
        let first = scratch.sub("first"), second = scratch.sub("second")
        _ = try Self.saveAtGate(backing, to: first)
        let restored = try VMSnapshot.restore(from: first, on: try KVM.open())
        defer { restored.close() }
        let dispatcher = ExitDispatcher()
        // The fault router runs, so a writer that read a missing page would get it
        // (counted in pagesFetched) instead of hanging.
        try restored.attach(to: dispatcher)
        let region = try #require(restored.vm.memory.regions.first)
        let before = Self.residentBytes(region)
        try VMSnapshot.save(restored.vm, dispatcher: dispatcher, pagers: restored.pagers, to: second)
        #expect(restored.pagesFetched == 0, "the save faulted \(restored.pagesFetched) pages in")
        #expect(Self.residentBytes(region) == before)
        Self.expectSparse(second)
        let r = try RunnerResult.restore(second)
        #expect(r.status == 0 && r.stderr == "", "\(r.stderr)")
        #expect(r.reports[0] == Array(full[0]!.dropFirst(Int(SnapshotGuest.gate))))
    }

    @Test("pages a demand pager has not fetched yet are saved from its source without being fetched; pages outside its ranges stay holes")
    func unfetchedPagesComeFromTheSource() throws {
        let g = try TestGuest("snap_work", ring: 3, memoryMiB: 8)
        let base: UInt64 = 16 << 20, pages = 16
        try g.vm.memory.addRegion(name: "lazy", guestAddress: base, size: UInt64(pages) * 4096, backing: .anonymous)
        let image = AsyncPFEndToEndTests.snapshot(pages: pages)
        let source = InMemoryPageSource(guestBase: base, bytes: image, latencyMicroseconds: 0)
        // The first half is paged from the source, the second half is demand-zero.
        let pager = try DemandPager(memory: g.vm.memory, region: "lazy", source: source, only: [base..<(base + UInt64(pages / 2) * 4096)])
        try pager.attach(to: g.dispatcher, vcpus: g.vm.vcpus)
        defer { pager.close() }
        let scratch = ScratchDir("unfetched")
        let dir = scratch.sub("snap")
        try VMSnapshot.save(g.vm, dispatcher: g.dispatcher, pagers: [pager], to: dir)
        #expect(pager.statistics.pagesFetched == 0 && pager.statistics.messages == 0, "\(pager.statistics)")
        let file = try Data(contentsOf: URL(fileURLWithPath: dir + "/memory.bin"))
        let lazy = [UInt8](file[(8 << 20)...])
        let half = pages / 2 * 4096
        #expect(lazy.count == pages * 4096)
        #expect(Array(lazy[..<half]) == Array(image[..<half]), "the paged half holds the source's bytes")
        #expect(lazy[half...].allSatisfy { $0 == 0 }, "the demand-zero half is zero")
    }
}
