import Testing
import VMMKit
import VMMLoader

/// A segment's BSS as QEMU's `load_elf` treats it (include/hw/elf_ops.h): kept only when it
/// overlaps no other PT_LOAD segment's [paddr, paddr + memsz); otherwise the segment is
/// its file bytes alone, wherever the other segment lies (before or after it in the file).
@Suite("ELF segments whose BSS overlaps another segment, as QEMU's load_elf", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct ELFSegmentBSSTests {
    @Test("a BSS over an earlier segment's bytes is dropped: those bytes stay as the file has them")
    func bssOverEarlierSegment() throws {
        let (vm, loader) = try HostileInputTests.vm(ram: 4 << 20)
        defer { vm.close() }
        let bytes = HostileInputTests.elf64(segments: [(0x200000, [UInt8](repeating: 0xff, count: 0x20), 0x20),
                                                       (0x100000, [0xf4, 0x55], 0x100010)])
        _ = try loader.load(bytes, ImageRequest(path: "two.elf"))
        #expect(try vm.memory.readBytes(0x200000, count: 0x20) == [UInt8](repeating: 0xff, count: 0x20))
        #expect(try vm.memory.readBytes(0x100000, count: 3) == [0xf4, 0x55, 0])
    }

    @Test("a BSS over a later segment's bytes and past RAM's end is dropped, not placed: the image loads, both segments' bytes in place, and only they count as loaded")
    func bssOverLaterSegment() throws {
        let (vm, loader) = try HostileInputTests.vm(ram: 4 << 20)
        defer { vm.close() }
        // Segment 0's BSS [0x300002, 0x500000) covers segment 1 and runs past the 4 MiB of RAM.
        func image(entry: UInt64) -> [UInt8] {
            HostileInputTests.elf64(entry: entry, segments: [(0x300000, [0xf4, 0x66], 0x200000), (0x3fe000, [0xaa, 0xbb], 2)])
        }
        #expect(try loader.load(image(entry: 0x300000), ImageRequest(path: "k.elf")) == .longMode(entry: 0x300000, stack: (4 << 20) - 0x10))
        #expect(try vm.memory.readBytes(0x300000, count: 3) == [0xf4, 0x66, 0])
        #expect(try vm.memory.readBytes(0x3fe000, count: 3) == [0xaa, 0xbb, 0])
        #expect(throws: LoaderError(.image, "k.elf: entry point 0x300010 lies outside what the image loads ([0x300000..<0x300002], [0x3fe000..<0x3fe002])")) {
            try loader.load(image(entry: 0x300010), ImageRequest(path: "k.elf"))
        }
    }

    @Test("a BSS over no other segment is kept (an entry in it is loaded); an empty segment inside it drops it, as QEMU's overlap test counts it")
    func bssKeptUnlessAnySegmentInside() throws {
        let (vm, loader) = try HostileInputTests.vm(ram: 4 << 20)
        defer { vm.close() }
        let kept = HostileInputTests.elf64(entry: 0x100800, segments: [(0x100000, [0xf4], 0x1000), (0x101000, [0xf4], 1)])
        #expect(try loader.load(kept, ImageRequest(path: "k.elf")) == .longMode(entry: 0x100800, stack: (4 << 20) - 0x10))
        let empty = HostileInputTests.elf64(entry: 0x100800, segments: [(0x100000, [0xf4], 0x1000), (0x100800, [], 0)])
        #expect(throws: LoaderError(.image, "k.elf: entry point 0x100800 lies outside what the image loads ([0x100000..<0x100001])")) {
            try loader.load(empty, ImageRequest(path: "k.elf"))
        }
    }
}
