import Glibc
import Testing
@testable import VMMKit
@testable import VMMPaging
@testable import VMMSnapshot

/// Issue: a lazy restore's memory used by the host before `attach`: reads are served
/// (no hang) and a re-save without the pagers saves the snapshot's bytes (not zeros).
@Suite("a lazily restored VM before attach", .serialized, .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct LazyRestoreHostAccessTests {
    /// The data pages the snapshot guest wrote, as an eager restore reads them.
    func eagerData(_ dir: String) throws -> [UInt8] {
        let eager = try VMSnapshot.restore(from: dir, on: try KVM.open(), memory: .eager)
        defer { eager.close() }
        return try eager.vm.memory.readBytes(SnapshotGuest.dataStart(0), count: Int(SnapshotGuest.pages * 4096))
    }

    @Test("the host reads and writes guest memory before attach: the pages are served, no hang")
    func hostReadBeforeAttach() throws {
        let scratch = ScratchDir("lazy-host-read")
        let dir = try SnapshotTests.baseSnapshot(scratch)
        let expected = try eagerData(dir)
        #expect(expected.contains { $0 != 0 })
        let restored = try VMSnapshot.restore(from: dir, on: try KVM.open(), memory: .lazy)
        defer { restored.close() }
        let data = try restored.vm.memory.readBytes(SnapshotGuest.dataStart(0), count: expected.count)
        #expect(data == expected)
        try restored.vm.memory.write(SnapshotGuest.dataStart(0) + 0x1_0000, UInt64(0x1234))
        #expect(try restored.vm.memory.read(SnapshotGuest.dataStart(0) + 0x1_0000, as: UInt64.self) == 0x1234)
        #expect(restored.pagesFetched >= Int(SnapshotGuest.pages))
    }

    @Test("re-saving a lazily restored VM without its pagers saves the snapshot's bytes, not zeros")
    func resaveWithoutPagers() throws {
        let scratch = ScratchDir("lazy-resave")
        let dir = try SnapshotTests.baseSnapshot(scratch)
        let expected = try eagerData(dir)
        let restored = try VMSnapshot.restore(from: dir, on: try KVM.open(), memory: .lazy)
        let again = scratch.sub("again")
        try VMSnapshot.save(restored.vm, dispatcher: nil, to: again)
        #expect(restored.pagesFetched == 0) // read from the source, not faulted in
        restored.close()
        #expect(try eagerData(again) == expected)
    }
}
