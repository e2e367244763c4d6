import Glibc
import Testing
@testable import VMMKit
@testable import VMMSnapshot

/// Issue 15, item 3: a page source that fails during a lazy restore stops the VM with a
/// diagnosis; it never hangs. The memory file is cut after `SnapshotImage` checked it
/// (as another process or a failing disk could), so the first page the guest touches
/// cannot be read.
@Suite("a lazy restore whose memory file fails", .serialized, .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct SnapshotPageSourceFailureTests {
    func run(_ restored: RestoredVM) throws -> [StopReason] {
        let dispatcher = ExitDispatcher()
        try dispatcher.registerPIO(port: 0x30, count: 8, owner: "reports") { _, _ in .handled }
        try dispatcher.registerPIO(port: 0x23, owner: "gate") { io, _ in io.setElement(0, 1); return .handled }
        try dispatcher.registerPIO(port: 0xf4, owner: "exit") { io, _ in .stop(.guestExit(code: Int32(bitPattern: io.element()))) }
        try restored.attach(to: dispatcher)
        return try restored.vm.run(dispatcher)
    }

    @Test("memory.bin truncated after the snapshot was opened: the vCPU stops as stuck naming the file and the page")
    func truncatedAfterOpen() throws {
        let scratch = ScratchDir("pagesource-cut")
        let dir = try SnapshotTests.baseSnapshot(scratch)
        let image = try SnapshotImage(path: dir)
        #expect(truncate(dir + "/memory.bin", 0) == 0)
        let restored = try image.restore(on: try KVM.open(), memory: .lazy)
        defer { restored.close() }
        let reasons = try run(restored)
        #expect(reasons.count == 1)
        guard case let .stuck(why)? = reasons.first else {
            Issue.record("expected a stuck vCPU, got \(reasons)")
            return
        }
        #expect(why.contains("snapshot memory \(dir)/memory.bin"), "\(why)")
        #expect(why.contains("could not deliver guest-physical page 0x"), "\(why)")
        #expect(why.contains("truncated after opening?"), "\(why)")
    }

    @Test("memory.bin truncated while a working-set prefetch runs too: the prefetch reports the error, the VM stops as stuck, no hang")
    func truncatedWithPrefetch() throws {
        let scratch = ScratchDir("pagesource-prefetch")
        let dir = try SnapshotTests.baseSnapshot(scratch)
        // A working set to prefetch: the guest's data pages.
        try SnapshotImage(path: dir).recordWorkingSet((0..<SnapshotGuest.pages).map { SnapshotGuest.dataStart(0) + $0 * 4096 })
        let image = try SnapshotImage(path: dir)
        #expect(image.workingSet.count == Int(SnapshotGuest.pages))
        #expect(truncate(dir + "/memory.bin", 0) == 0)
        let restored = try image.restore(on: try KVM.open(), memory: .lazy)
        defer { restored.close() }
        let prefetch = try restored.startPrefetch(image.workingSet)
        let reasons = try run(restored)
        if case .failure = prefetch.join() {} else { Issue.record("the prefetch of a cut memory file succeeded") }
        #expect(reasons.count == 1)
        guard case let .stuck(why)? = reasons.first else {
            Issue.record("expected a stuck vCPU, got \(reasons)")
            return
        }
        #expect(why.contains("could not deliver guest-physical page 0x"), "\(why)")
    }

    @Test("a working set past its limit keeps its first pages and the snapshot stays readable")
    func largeWorkingSet() throws {
        let scratch = ScratchDir("large-working-set")
        let dir = try SnapshotTests.baseSnapshot(scratch)
        let limit = SnapshotImage.maxWorkingSetPages
        // The guest's data pages over and over, 10 more than a working set holds.
        let pages = (0..<(limit + 10)).map { SnapshotGuest.dataStart(0) + UInt64($0) % SnapshotGuest.pages * 4096 }
        try SnapshotImage(path: dir).recordWorkingSet(pages)
        let image = try SnapshotImage(path: dir)
        #expect(image.workingSet.count == limit)
        #expect(image.workingSet == Array(pages.prefix(limit)))
    }
}

