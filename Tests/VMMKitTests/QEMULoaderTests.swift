import Foundation
import Testing
import VMMKit
import VMMLoader

/// Kernels written for `qemu-system-x86_64 -kernel`, loaded and entered as QEMU's loaders
/// and option ROMs leave them (issue 13). The kernels are Examples/GuestImages/qemu,
/// built by scripts/build-guests.
@Suite("QEMU -kernel loading and entry state on real KVM", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct QEMULoaderTests {
    static let halfMinute = QEMUCompatTests.halfMinute

    @Test("--append takes a value that begins with '-', as QEMU's -append does")
    func appendDash() throws {
        let image = VMMProcess.guest("multiboot.elf")
        let r = try VMMProcess.run(["run", image, "--append", "-flag value --other"])
        #expect(r.stdout.hasPrefix("cmdline: \(image) -flag value --other\n"))
        #expect(r.status == (0x10 << 1) | 1)
    }

    @Test("--initrd takes QEMU's module list: FILE ARGS separated by ',', ',,' a comma in a name; each module gets its whole text as its string")
    func moduleList() throws {
        let first = try VMMProcess.temp("mod,a.txt", Array("first\n".utf8))
        let second = try VMMProcess.temp("mod-b.txt", Array("second\n".utf8))
        let image = VMMProcess.guest("multiboot.elf")
        let list = first.replacingOccurrences(of: ",", with: ",,") + " root=/dev/x quiet," + second
        let r = try VMMProcess.run(["run", image, "--initrd", list])
        #expect(r.stdout == "cmdline: \(image)\nmodule \(first) root=/dev/x quiet: first\nmodule \(second): second\ncpus: 1\nram: 128 MiB\n")
        #expect(r.stderr == "")
        #expect(r.status == (0x10 << 1) | 1)
        let empty = try VMMProcess.run(["run", image, "--initrd", second + ","])
        #expect(empty.stderr == "vmm: module 2 of the initrd list '\(second),' names no file\n")
        #expect(empty.status == 2)
    }

    @Test("the module list's bounds: at most 32 modules and 5,376 bytes of strings, each named in one line")
    func moduleListBounds() throws {
        #expect(throws: LoaderError(.request, "the initrd list names 33 modules; a Multiboot kernel gets at most 32", fields: [.initrd])) {
            try ImageLoaderTests.boot(ImageRequest(path: VMMProcess.guest("multiboot.elf"),
                                                   initrd: Array(repeating: "m", count: 33).joined(separator: ",")))
        }
        #expect(throws: LoaderError(.request, "the initrd list's module strings take 5377 bytes; at most 5376", fields: [.initrd])) {
            try ImageLoaderTests.boot(ImageRequest(path: VMMProcess.guest("multiboot.elf"), initrd: String(repeating: "m", count: 5376)))
        }
        #expect(throws: LoaderError(.request, "module 2 of the initrd list ',,,' names no file", fields: [.initrd])) {
            try ImageLoaderTests.boot(ImageRequest(path: VMMProcess.guest("multiboot.elf"), initrd: ",,,"))
        }
    }

    @Test("a kernel at 0x8000 loads; the loader's tables and Multiboot info go elsewhere; it visits real mode and comes back")
    func kernelAt0x8000() throws {
        let image = VMMProcess.guest("lowboot.elf")
        let r = try VMMProcess.run(["run", image, "--append", "low", "--max-seconds", Self.halfMinute])
        #expect(r.stdout == "protected mode at 0x8000\nreal mode\nprotected mode again, cmdline: \(image) low\n")
        #expect(r.stderr == "")
        #expect(r.status == (0x13 << 1) | 1)
    }

    @Test("a higher-half kernel (linked at 0xc0100000, loaded at 1 MiB) is entered at its physical entry, as QEMU's ELF loader enters it")
    func higherHalfKernel() throws {
        let r = try VMMProcess.run(["run", VMMProcess.guest("higherhalf.elf"), "--max-seconds", Self.halfMinute])
        #expect(r.stdout == "higher-half kernel entered at 0x0010000C\n")
        #expect(r.stderr == "")
        #expect(r.status == (0x15 << 1) | 1)
    }

    @Test("the loader moves its 64 KiB table window off an image in low memory, and refuses only the first page")
    func tableWindowMoves() throws {
        let elf = try [UInt8](Data(contentsOf: URL(fileURLWithPath: VMMProcess.guest("hello64.elf"))))
        let text = Array(elf[0x1000..<min(elf.count, 0x1100)]) // position-independent hello
        let low = try ImageLoaderTests.boot(ImageRequest(path: "hello.bin", loadAddress: 0x2000), bytes: text)
        #expect(low.entry == .longMode(entry: 0x2000, stack: (4 << 20) - 0x10, tables: 0x10000))
        #expect(String(decoding: low.console, as: UTF8.self) == "Hello from an ELF64 guest\n")
        #expect(low.stop == .guestExit(code: 0))
        // An image over [0x10000, 0x20000) too: the next free window.
        let wide = try ImageLoaderTests.boot(ImageRequest(path: "wide.bin", loadAddress: 0x2000),
                                             bytes: text + [UInt8](repeating: 0xf4, count: 0x10000))
        #expect(wide.entry == .longMode(entry: 0x2000, stack: (4 << 20) - 0x10, tables: 0x20000))
        #expect(wide.stop == .guestExit(code: 0))

        let vm = try KVM.open().createVM()
        defer { vm.close() }
        try vm.memory.addRegion(name: "ram", guestAddress: 0, size: 2 << 20)
        #expect(throws: LoaderError(.image, "x.bin: flat image [0x800..<0x803] overlaps the first page [0x0..<0x1000] (real-mode interrupt vectors)")) {
            try ImageLoader(memory: vm.memory, ramSize: 2 << 20).load([1, 2, 3], ImageRequest(path: "x.bin", loadAddress: 0x800))
        }
    }

    @Test("a Multiboot kernel finds QEMU's entry state: a stray magic with a bad checksum passed over, a video-mode flag booted without a mode, a stack it can call on, the option ROM's five-entry GDT")
    func multibootEntryState() throws {
        let r = try VMMProcess.run(["run", VMMProcess.guest("mbentry.elf"), "--max-seconds", Self.halfMinute])
        #expect(r.stdout == "esp at entry 0000F000, gdt limit 00000027, info flags 0000024F\n")
        #expect(r.stderr == "")
        #expect(r.status == (0x17 << 1) | 1)
    }

    @Test("a kernel QEMU boots finds the PIT and PICs as SeaBIOS leaves them: IRQ 0 ticking at 18.2 Hz (mode 2) on vector 0x08 without programming either, the POST's masks 0xb8 and 0x8e; port 0x92 with A20 on (0x02)")
    func seaBIOSInterruptState() throws {
        let r = try VMMProcess.run(["run", VMMProcess.guest("biosirq.elf"), "--max-seconds", Self.halfMinute])
        #expect(r.stdout == "pic masks B8 8E, port 92 02, pit status 34, 3 ticks of IRQ 0 on vector 0x08\n")
        #expect(r.stderr == "")
        #expect(r.status == (0x1d << 1) | 1)
    }

    @Test("--memory 3328M: all RAM below the hole, as QEMU's pc keeps RAM under 3.5 GiB (it was split at 3 GiB); the guest writes RAM at 0xc8000000")
    func memoryUnder3Point5G() throws {
        let r = try VMMProcess.run(["run", VMMProcess.guest("highmem.elf"), "--memory", "3328M", "--max-seconds", Self.halfMinute])
        // SeaBIOS's map under QEMU: RAM to the EBDA, the EBDA and BIOS area, RAM from 1 MiB
        // to its high table zone, that zone, KVM's identity map and TSS, the BIOS ROM.
        #expect(r.stdout == """
            multiboot flags 0000024F, boot device 8000FFFF, loader VMMKit
            mem_lower 0000027F mem_upper 0033FB80
            mmap 0000000000000000 len 000000000009FC00 type 1
            mmap 000000000009FC00 len 0000000000000400 type 2
            mmap 00000000000F0000 len 0000000000010000 type 2
            mmap 0000000000100000 len 00000000CFEE0000 type 1
            mmap 00000000CFFE0000 len 0000000000020000 type 2
            mmap 00000000FEFFC000 len 0000000000004000 type 2
            mmap 00000000FFFC0000 len 0000000000040000 type 2
            fw_cfg ram 00000000D0000000
            at 0xC8000000: 600DCAFE
            at 4 GiB: 00000000 00000000

            """)
        #expect(r.stderr == "")
        #expect(r.status == (0x19 << 1) | 1)
    }
}
