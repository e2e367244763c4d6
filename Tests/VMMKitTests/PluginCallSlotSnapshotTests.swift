import Glibc
import Synchronization
import Testing
@testable import VMMKit

/// The slot a thread publishes its plugin calls in, as the watchdog reads it from another
/// thread while calls nest and unnest.
@Suite("a thread's plugin call slot, read while calls nest")
struct PluginCallSlotSnapshotTests {
    @Test("a reader never sees a torn view: an outer call with calls nesting in and out of it in a loop reads as the outer call alone or with the nested one, never as nested in itself (CI223, under TSan's load)")
    func nestedCallsReadConsistently() throws {
        let outerTag: UInt64 = 7 << 32 | 1, innerTag: UInt64 = 7 << 32 | 2
        let stop = Atomic<Bool>(false), published = Atomic<Bool>(false)
        let slotBox = Atomic<UInt>(0)
        let writer = try HostThread.start("slot-writer") {
            let state = PluginThreadState.current
            slotBox.store(UInt(bitPattern: Unmanaged.passUnretained(state.slot).toOpaque()), ordering: .sequentiallyConsistent)
            state.publishing(tag: outerTag, what: 1 << 24 | 1, address: 0x538) {
                published.store(true, ordering: .sequentiallyConsistent)
                while !stop.load(ordering: .relaxed) {
                    state.publishing(tag: innerTag, what: 6 << 24 | 3, address: 0) {}
                }
            }
        }
        while !published.load(ordering: .sequentiallyConsistent) { sched_yield() }
        let slot = Unmanaged<PluginCallSlot>.fromOpaque(UnsafeRawPointer(bitPattern: slotBox.load(ordering: .sequentiallyConsistent))!)
            .takeUnretainedValue()
        var views = 0, nested = 0, wrong: [String] = []
        while views < 2_000_000 {
            guard let s = slot.snapshot() else { continue }
            views += 1
            if s.tag != outerTag || s.address != 0x538 { wrong.append("outer \(s.tag) \(s.address)") }
            if let n = s.nested {
                nested += 1
                if n.tag != innerTag || n.address != 0 || n.what != 6 << 24 | 3 { wrong.append("nested \(n.tag) \(n.what) \(n.address)") }
            }
            if wrong.count > 5 { break }
        }
        stop.store(true, ordering: .sequentiallyConsistent)
        pthread_join(writer, nil)
        #expect(wrong.isEmpty, "\(wrong.prefix(5))")
        #expect(nested > 0)
    }
}
