import CKVM
import Foundation
import Glibc
import Testing
@testable import VMMKit
@testable import VMMSnapshot

/// `memory.sums` (format 2): each page of the memory file is checked where a restore
/// reads it. Before it, a memory file changed after the snapshot was written restored a
/// silently different guest.
@Suite("Snapshot memory sums on real KVM", .serialized, .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct SnapshotMemorySumsTests {
    /// Indexes of the pages the sums say held data.
    static func dataPages(_ dir: String) throws -> [Int] {
        let sums = try Data(contentsOf: URL(fileURLWithPath: dir + "/memory.sums"))
        return stride(from: 0, to: sums.count, by: 8).filter { i in sums[i..<(i + 8)].contains { $0 != 0 } }.map { $0 / 8 }
    }

    /// Flips one bit of every page of `dir/memory.bin` that held data; returns those pages.
    static func flipBitOfDataPages(_ dir: String) throws -> [Int] {
        let pages = try dataPages(dir)
        let file = try #require(FileHandle(forUpdatingAtPath: dir + "/memory.bin"))
        for p in pages {
            try file.seek(toOffset: UInt64(p * 4096 + 100))
            let byte = try #require(try file.read(upToCount: 1)).first!
            try file.seek(toOffset: UInt64(p * 4096 + 100))
            try file.write(contentsOf: [byte ^ 0x01])
        }
        try file.close()
        return pages
    }

    @Test("a flipped bit in a page, a page zeroed, a page lost to a hole: refused naming the page, eagerly and at the lazy fetch")
    func damaged() throws {
        let scratch = ScratchDir("sums")
        let base = try SnapshotTests.baseSnapshot(scratch)
        let pages = try Self.dataPages(base)
        #expect(pages.count >= 2, "the guest's code and stack pages hold data")
        let intact = try RunnerResult.restore(base, eager: true)
        #expect(intact.status == 0, "\(intact.stderr)")

        func expectMismatch(_ dir: String, page: Int, eager: Bool) throws {
            let before = try directoryFingerprint(dir)
            let r = try RunnerResult.restore(dir, eager: eager)
            #expect(r.status != 0)
            #expect(r.stderr.contains("memory.bin: the page at byte 0x\(String(page * 4096, radix: 16)) does not match memory.sums: the memory file was damaged or changed after the snapshot was written"),
                    "eager \(eager): \(r.stderr)")
            #expect(try directoryFingerprint(dir) == before)
        }
        // One bit of every page that held data: the first page a restore reads is refused.
        let flipped = try SnapshotTests.copy(base, to: "flipped", in: scratch)
        #expect(try Self.flipBitOfDataPages(flipped) == pages)
        try expectMismatch(flipped, page: pages[0], eager: true)
        // Lazily, the vCPU that faults the first damaged page stops (stuck, naming it).
        let lazy = try RunnerResult.restore(flipped)
        #expect(lazy.status == 0 && lazy.stops.count == 1, "lazy: \(lazy)")
        #expect(lazy.stops.first?.hasPrefix("0 stuck: ") == true)
        let stop = lazy.stops.first ?? ""
        #expect(stop.contains(" does not match memory.sums: the memory file was damaged or changed after the snapshot was written"), "lazy: \(stop)")
        #expect(pages.contains { stop.contains("memory.bin: the page at byte 0x\(String($0 * 4096, radix: 16)) does not") }, "a damaged page named: \(stop)")
        #expect(lazy.reports.isEmpty, "the guest ran on no damaged page")

        // The last data page zeroed in place, then lost to a hole (the file cut there and
        // extended again): the sums still say it held data.
        let last = pages.last!
        let zeroed = try SnapshotTests.copy(base, to: "zeroed", in: scratch)
        let z = try #require(FileHandle(forUpdatingAtPath: zeroed + "/memory.bin"))
        try z.seek(toOffset: UInt64(last * 4096))
        try z.write(contentsOf: Data(count: 4096))
        try z.close()
        try expectMismatch(zeroed, page: last, eager: true)
        let holed = try SnapshotTests.copy(base, to: "holed", in: scratch)
        let size = try #require(try FileManager.default.attributesOfItem(atPath: holed + "/memory.bin")[.size] as? Int)
        #expect(truncate(holed + "/memory.bin", off_t(last * 4096)) == 0 && truncate(holed + "/memory.bin", off_t(size)) == 0)
        try expectMismatch(holed, page: last, eager: true)
    }

    @Test("a format 1 snapshot (no sums) still restores; a format 2 one without memory.sums is refused")
    func formats() throws {
        let scratch = ScratchDir("sums-formats")
        let base = try SnapshotTests.baseSnapshot(scratch)
        let expected = try RunnerResult.restore(base, eager: true)
        #expect(expected.status == 0, "\(expected.stderr)")
        let old = try SnapshotTests.copy(base, to: "format1", in: scratch)
        let text = try String(contentsOfFile: old + "/manifest", encoding: .utf8)
        #expect(text.hasPrefix("vmmkit-snapshot 2\n") && text.contains("\nmemory-sums memory.sums\n"))
        try text.replacingOccurrences(of: "vmmkit-snapshot 2\n", with: "vmmkit-snapshot 1\n")
            .replacingOccurrences(of: "memory-sums memory.sums\n", with: "")
            .write(toFile: old + "/manifest", atomically: false, encoding: .utf8)
        try FileManager.default.removeItem(atPath: old + "/memory.sums")
        for eager in [true, false] {
            let r = try RunnerResult.restore(old, eager: eager)
            #expect(r.status == 0 && r.reports == expected.reports && r.stops == expected.stops, "eager \(eager): \(r.stderr)")
        }
        let missing = try SnapshotTests.copy(base, to: "no-sums", in: scratch)
        try FileManager.default.removeItem(atPath: missing + "/memory.sums")
        let r = try RunnerResult.restore(missing)
        #expect(r.status == 1 && r.stderr.contains("memory.sums is missing"), "\(r.stderr)")
        let wrongVersion = try SnapshotTests.copy(base, to: "sums-in-1", in: scratch)
        try text.replacingOccurrences(of: "vmmkit-snapshot 2\n", with: "vmmkit-snapshot 1\n")
            .write(toFile: wrongVersion + "/manifest", atomically: false, encoding: .utf8)
        let v1 = try RunnerResult.restore(wrongVersion)
        #expect(v1.status == 1 && v1.stderr.contains("memory sums 'memory.sums' (expected memory.sums, once, from format 2)"), "\(v1.stderr)")
    }
}
