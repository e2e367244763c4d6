import Foundation
import Testing
import VMMKit
import VMMLoader

/// Images whose headers name work without end, or a place the loader then uses for
/// itself; and `vmm run` requests that a flag or the config got wrong.
@Suite("Loader bounds: program headers, notes, copies, the stack, modules, requests", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct LoaderBoundsTests {
    typealias H = HostileInputTests

    /// `elf` with its program header `index` rewritten by `change` (a 56-byte ELF64 header).
    static func patched(_ elf: [UInt8], header index: Int, _ change: (inout [UInt8]) -> Void) -> [UInt8] {
        var bytes = elf, header = Array(elf[64 + 56 * index..<64 + 56 * (index + 1)])
        change(&header)
        bytes.replaceSubrange(64 + 56 * index..<64 + 56 * (index + 1), with: header)
        return bytes
    }

    static func put<T: FixedWidthInteger>(_ v: T, _ at: Int, _ b: inout [UInt8]) {
        withUnsafeBytes(of: v.littleEndian) { for (i, x) in $0.enumerated() { b[at + i] = x } }
    }

    @Test("over 64 KiB of program headers (Linux's limit) is refused before any is read: 65,535 made a load take 12 minutes")
    func programHeaderTable() throws {
        let (vm, loader) = try H.vm(ram: 4 << 20)
        defer { vm.close() }
        let many = H.elf64(segments: (0..<1171).map { (0x100000 + UInt64($0), [0xf4], 1) })
        #expect(throws: LoaderError(.image, "x.elf: 1171 program headers of 56 bytes are over 64 KiB (Linux's limit)")) {
            try loader.load(many, ImageRequest(path: "x.elf"))
        }
        let most = H.elf64(segments: (0..<1170).map { (0x100000 + UInt64($0), [0xf4], 1) })
        #expect(try loader.load(most, ImageRequest(path: "x.elf")) == .longMode(entry: 0x100000, stack: (4 << 20) - 0x10))
    }

    @Test("load segments that copy the same file bytes again and again, or note segments that name them again and again, are refused (1,000 notes over 1 MiB took 18 s)")
    func repeatedBytes() throws {
        let (vm, loader) = try H.vm(ram: 4 << 20)
        defer { vm.close() }
        let payload = [UInt8](repeating: 0, count: 64 << 10)
        // Twenty load segments over the one 64 KiB the file holds.
        var again = H.elf64(segments: [(0x100000, payload, 0x10000)] + (1..<20).map { (0x100000 + UInt64($0) * 0x10000, [], 0x10000) })
        for i in 1..<20 { again = Self.patched(again, header: i) { Self.put(UInt64(64 + 56 * 20), 8, &$0); Self.put(UInt64(0x10000), 32, &$0) } }
        #expect(throws: LoaderError(.image, "x.elf: the load segments up to segment 2 copy 196608 bytes from a file of 66720: the same bytes named again and again")) {
            try loader.load(again, ImageRequest(path: "x.elf"))
        }
        // One load segment, then two note segments over the same 64 KiB (empty notes).
        var notes = H.elf64(segments: [(0x100000, payload, 0x10000), (0, [], 0), (0, [], 0)])
        for i in 1...2 {
            notes = Self.patched(notes, header: i) {
                Self.put(UInt32(4), 0, &$0); Self.put(UInt64(64 + 56 * 3), 8, &$0); Self.put(UInt64(0x10000), 32, &$0); Self.put(UInt64(4), 48, &$0)
            }
        }
        #expect(throws: LoaderError(.image, "x.elf: the note segments up to segment 2 cover 131072 bytes of a file of 65768: the same bytes named again and again")) {
            try loader.load(notes, ImageRequest(path: "x.elf"))
        }
        let once = Self.patched(notes, header: 2) { Self.put(UInt32(6), 0, &$0) } // PT_PHDR: not a note
        #expect(try loader.load(once, ImageRequest(path: "x.elf")) == .longMode(entry: 0x100000, stack: (4 << 20) - 0x10))
    }

    @Test("an image in the long-mode stack's page (the top of RAM) gets the table window's stack instead: its first call's return address was written over its own bytes")
    func stackOutsideTheImage() throws {
        let (vm, loader) = try H.vm(ram: 2 << 20)
        defer { vm.close() }
        let toTheEnd = H.elf64(segments: [(0x100000, [0xf4], 0x100000)])
        #expect(try loader.load(toTheEnd, ImageRequest(path: "x.elf")) == .longMode(entry: 0x100000, stack: 0xf000, tables: 0))
        let below = H.elf64(segments: [(0x100000, [0xf4], 0xff000)])
        #expect(try loader.load(below, ImageRequest(path: "x.elf")) == .longMode(entry: 0x100000, stack: (2 << 20) - 0x10, tables: 0))
        let flat = try loader.load([UInt8](repeating: 0xf4, count: 0x1000), ImageRequest(path: "x.bin", loadAddress: 0x1ff000))
        #expect(flat == .longMode(entry: 0x1ff000, stack: 0xf000, tables: 0))
    }

    @Test("a Multiboot module ending exactly at 4 GiB is refused: mod_end cannot hold 2^32 (it trapped converting it)")
    func moduleAtFourGiB() throws {
        let (vm, loader) = try H.vm(ram: (4 << 30) + (2 << 20))
        defer { vm.close() }
        let magic: UInt32 = 0x1BAD_B002, flags: UInt32 = 1 << 16, at: UInt32 = 0xffff_e000
        let words: [UInt32] = [magic, flags, 0 &- (magic &+ flags), at, at, 0, 0, at + 32]
        let kernel = words.flatMap { w in withUnsafeBytes(of: w.littleEndian) { Array($0) } } + [UInt8](repeating: 0xf4, count: 64)
        let module = try VMMProcess.scratch("loader-bounds", "module") + "/initrd"
        try Data(count: 0x1000).write(to: URL(fileURLWithPath: module))
        #expect(throws: LoaderError(.image, "\(module): module (initrd) [0xfffff000..<0x100000000] ends at or above 4 GiB, out of Multiboot's reach")) {
            try loader.load(kernel, ImageRequest(path: "k.bin", initrd: module))
        }
    }

    @Test("vmm run: --mode 16 for an image that is not flat is refused, not ignored; a request error is the config's only when the config alone asked; --memory in bytes and whole pages")
    func requests() throws {
        let elf = VMMProcess.guest("hello64.elf")
        let mode16 = try VMMProcess.run(["run", elf, "--mode", "16"])
        #expect(mode16.status == 2)
        #expect(mode16.stderr == "vmm: \(elf): mode 16 is for a flat binary (with a load address); this image is entered as its format says\n")
        let config = try VMMProcess.scratch("loader-bounds", "config") + "/mode.json"
        try #"{"mode": 64}"#.write(toFile: config, atomically: true, encoding: .utf8)
        let append = try VMMProcess.run(["run", elf, "--config", config, "--append", "foo"])
        #expect(append.status == 2, "the flag's error, not the file's: \(append.stderr)")
        #expect(append.stderr.hasPrefix("vmm: \(elf): a command line (append) is passed to "), "\(append.stderr)")
        // The file's own mode is the file's error, whatever flag comes with it.
        try #"{"mode": 16}"#.write(toFile: config, atomically: true, encoding: .utf8)
        let fileMode = try VMMProcess.run(["run", elf, "--config", config, "--append", "foo"])
        #expect(fileMode.status == 4)
        #expect(fileMode.stderr == "vmm: \(config): \(elf): mode 16 is for a flat binary (with a load address); this image is entered as its format says\n")
        let pages = try VMMProcess.run(["run", elf, "--memory", "2049K"])
        #expect(pages.status == 2)
        #expect(pages.stderr == "vmm: --memory 2098176 bytes is not a whole number of 4 KiB pages\n", "\(pages.stderr)")
        let bytes = try VMMProcess.run(["run", elf, "--memory", "3145728B"])
        #expect(bytes.status == 1 && bytes.stdout.hasPrefix("Hello"), "3 MiB, not 3 TiB: \(bytes.stderr)")
        // Multiboot's command line starts with the image's path: the message says how
        // much of it is the path's.
        let kernel = VMMProcess.guest("multiboot.elf")
        let long = try VMMProcess.run(["run", kernel, "--append", String(repeating: "a", count: 4090)])
        #expect(long.status == 2)
        #expect(long.stderr == "vmm: \(kernel): the Multiboot command line, the image path (\(kernel.utf8.count) bytes) then --append (4090 bytes), "
            + "is \(kernel.utf8.count + 4091) bytes; at most 4095 fit\n", "\(long.stderr)")
        // 2,000 bytes (over the 1,023 this loader once took; QEMU's has no bound) reach the kernel whole.
        let twoK = String(repeating: "b", count: 1999) + "!"
        let fits = try VMMProcess.run(["run", kernel, "--append", twoK])
        #expect(fits.stdout.hasPrefix("cmdline: \(kernel) \(twoK)\n"), "\(fits.stdout.prefix(200))")
        #expect(fits.status == (0x10 << 1) | 1)
        let pvh = try VMMProcess.run(["run", VMMProcess.guest("pvh.elf"), "--append", String(repeating: "c", count: 4096)])
        #expect(pvh.status == 2)
        #expect(pvh.stderr == "vmm: the command line (append) is longer than 4095 bytes\n", "\(pvh.stderr)")
    }
}
