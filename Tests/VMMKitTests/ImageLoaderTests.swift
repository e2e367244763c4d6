import Foundation
import Testing
import VMMKit
import VMMLoader

@Suite("VMMLoader: images booted in one call on real KVM", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct ImageLoaderTests {
    /// Boots `request` on a fresh 4 MiB VM; returns the console bytes and how it stopped.
    static func boot(_ request: ImageRequest, bytes: [UInt8]? = nil) throws -> (entry: BootEntry, console: [UInt8], stop: StopReason) {
        let vm = try KVM.open().createVM()
        defer { vm.close() }
        try vm.memory.addRegion(name: "ram", guestAddress: 0, size: 4 << 20)
        let vcpu = try vm.createVCPU()
        let loader = ImageLoader(memory: vm.memory, ramSize: 4 << 20)
        let entry: BootEntry
        if let bytes {
            entry = try loader.load(bytes, request)
            try vcpu.boot(entry)
        } else {
            entry = try loader.boot(request, on: vcpu)
        }
        let dispatcher = ExitDispatcher()
        nonisolated(unsafe) var console: [UInt8] = []
        try dispatcher.registerPIO(port: 0x3f8, owner: "console") { io, _ in
            console.append(UInt8(truncatingIfNeeded: io.value)); return .handled
        }
        try dispatcher.registerPIO(port: 0xf4, owner: "exit") { io, _ in .stop(.guestExit(code: Int32(io.value))) }
        let reasons = try vm.run(dispatcher)
        return (entry, console, reasons[0])
    }

    @Test("an ELF64 file: segments placed, long mode at e_entry, the guest prints and exits")
    func elf64() throws {
        let r = try Self.boot(ImageRequest(path: VMMProcess.guest("hello64.elf")))
        #expect(r.entry == .longMode(entry: 0x100000, stack: (4 << 20) - 0x10))
        #expect(String(decoding: r.console, as: UTF8.self) == "Hello from an ELF64 guest\n")
        #expect(r.stop == .guestExit(code: 0))
    }

    @Test("a flat 64-bit binary from memory at a load address")
    func flat() throws {
        let elf = try [UInt8](Data(contentsOf: URL(fileURLWithPath: VMMProcess.guest("hello64.elf"))))
        // The ELF's text starts at file offset 0x1000 and is position independent.
        let text = Array(elf[0x1000..<min(elf.count, 0x1100)])
        let r = try Self.boot(ImageRequest(path: "hello.bin", loadAddress: 0x200000), bytes: text)
        #expect(r.entry == .longMode(entry: 0x200000, stack: (4 << 20) - 0x10))
        #expect(r.stop == .guestExit(code: 0))
    }

    @Test("errors name the file and the problem, with a kind a launcher maps to a status")
    func errors() throws {
        let vm = try KVM.open().createVM()
        defer { vm.close() }
        try vm.memory.addRegion(name: "ram", guestAddress: 0, size: 2 << 20)
        let loader = ImageLoader(memory: vm.memory, ramSize: 2 << 20)
        #expect(throws: LoaderError(.image, "x.elf: truncated ELF header (4 bytes)")) {
            try loader.load([0x7f, 0x45, 0x4c, 0x46], ImageRequest(path: "x.elf"))
        }
        #expect(throws: LoaderError(.image, "x.bin: not an ELF64, PVH, Multiboot or Linux bzImage; for a flat binary give a load address (and entry)")) {
            try loader.load([1, 2, 3], ImageRequest(path: "x.bin"))
        }
        #expect(throws: LoaderError(.image, "x.bin: the flat image is empty (0 bytes)")) {
            try loader.load([], ImageRequest(path: "x.bin", loadAddress: 0x10000))
        }
        #expect(throws: LoaderError(.request, "entry 0x20 is outside the image loaded at [0x10000..<0x10003]", fields: [.entry, .loadAddress])) {
            try loader.load([1, 2, 3], ImageRequest(path: "x.bin", loadAddress: 0x10000, entry: 0x20))
        }
        #expect(throws: LoaderError(.image, "x.bin: flat image [0x1ffffe..<0x200001] lies outside guest RAM [0x0..<0x200000] (2 MiB)")) {
            try loader.load([1, 2, 3], ImageRequest(path: "x.bin", loadAddress: 0x1ffffe))
        }
        #expect(throws: LoaderError(.image, "x.bin: flat image of 3 bytes at 0xffffffffffffffff runs past the end of the 64-bit address space; guest RAM is [0x0..<0x200000] (2 MiB)")) {
            try loader.load([1, 2, 3], ImageRequest(path: "x.bin", loadAddress: 0xffff_ffff_ffff_ffff))
        }
        // With RAM above 4 GiB (--memory past the hole), an image at 4 GiB is still out:
        // the message says why, not that RAM ends at the hole.
        try vm.memory.addRegion(name: "ram-high", guestAddress: 1 << 32, size: 4 << 20)
        let high = ImageLoader(memory: vm.memory, ramSize: 2 << 20, highRAMSize: 4 << 20)
        #expect(throws: LoaderError(.image, "x.bin: flat image [0x100000000..<0x100000003] lies outside the guest RAM below the MMIO hole [0x0..<0x200000] (2 MiB); the 4 MiB above 4 GiB is not loaded into")) {
            try high.load([1, 2, 3], ImageRequest(path: "x.bin", loadAddress: 0x1_0000_0000))
        }
    }
}
