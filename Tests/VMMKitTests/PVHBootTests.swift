import Foundation
import Testing
import VMMKit
import VMMLoader

/// PVH boot (Xen's PHYS32_ENTRY note), as QEMU's `-kernel` boots Linux's vmlinux and
/// unikernels: the loader's side with hand-made ELFs, the launcher's with a kernel
/// written for QEMU (Examples/GuestImages/qemu/pvh.S).
@Suite("PVH boot on real KVM", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct PVHBootTests {
    /// An ELF64 x86-64 executable: one PT_LOAD of `code` at 0x100000, then a PT_NOTE of
    /// `note` (its file offset and size changed by `noteOffset` and `noteSize`).
    static func elf64(code: [UInt8], note: [UInt8], entry: UInt64 = 0x100000, machine: UInt16 = 62,
                      noteOffset: UInt64? = nil, noteSize: UInt64? = nil) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 64 + 2 * 56)
        func put<T: FixedWidthInteger>(_ v: T, _ at: Int) { withUnsafeBytes(of: v.littleEndian) { for (i, x) in $0.enumerated() { b[at + i] = x } } }
        b[0...6] = [0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]
        put(UInt16(2), 16); put(machine, 18); put(UInt32(1), 20); put(entry, 24)
        put(UInt64(64), 32); put(UInt16(64), 52); put(UInt16(56), 54); put(UInt16(2), 56)
        let codeAt = UInt64(b.count), noteAt = codeAt + UInt64(code.count)
        put(UInt32(1), 64); put(UInt32(7), 68); put(codeAt, 72); put(UInt64(0x100000), 80); put(UInt64(0x100000), 88)
        put(UInt64(code.count), 96); put(UInt64(code.count), 104); put(UInt64(0x1000), 112)
        put(UInt32(4), 120); put(UInt32(4), 124); put(noteOffset ?? noteAt, 128)
        put(noteSize ?? UInt64(note.count), 152); put(UInt64(4), 168)
        return b + code + note
    }

    /// A note: name, type, description, each padded to 4 bytes.
    static func note(name: String, type: UInt32, desc: [UInt8], nameSize: UInt32? = nil) -> [UInt8] {
        func pad(_ x: [UInt8]) -> [UInt8] { x + [UInt8](repeating: 0, count: (4 - x.count % 4) % 4) }
        let n = Array(name.utf8) + [0]
        return le(nameSize ?? UInt32(n.count)) + le(UInt32(desc.count)) + le(type) + pad(n) + pad(desc)
    }

    static func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }

    /// `mov (%ebx),%eax; cmp $0x336ec578,%eax; jne 1f; mov $0x21,%al; out %al,$0xf4; hlt;
    /// 1: mov $0x66,%al; out %al,$0xf4; hlt` at 0x100000; at 0x100100 the same exit 0x66.
    static let checksMagic: [UInt8] = {
        var code: [UInt8] = [0x8b, 0x03, 0x3d, 0x78, 0xc5, 0x6e, 0x33, 0x75, 0x05, 0xb0, 0x21, 0xe6, 0xf4, 0xf4,
                             0xb0, 0x66, 0xe6, 0xf4, 0xf4]
        code += [UInt8](repeating: 0xf4, count: 0x100 - code.count) + [0xb0, 0x66, 0xe6, 0xf4, 0xf4]
        return code
    }()

    @Test("an ELF64 with an 8-byte PVH note, as Linux's vmlinux: entered in 32-bit mode at the note's address, not e_entry, EBX at the start info")
    func elf64Note() throws {
        let entry = Self.le(UInt64(0x100000))
        let image = Self.elf64(code: Self.checksMagic, note: Self.note(name: "GNU", type: 3, desc: [1, 2, 3, 4])
                                   + Self.note(name: "Xen", type: 18, desc: entry), entry: 0x100100)
        let r = try ImageLoaderTests.boot(ImageRequest(path: "vmlinux"), bytes: image)
        #expect(r.entry == .protected32(entry: 0x100000, eax: 0, ebx: 0x9000))
        #expect(r.stop == .guestExit(code: 0x21))
        // Without the note: the ELF64 convention, long mode at e_entry.
        let plain = try ImageLoaderTests.boot(ImageRequest(path: "plain"), bytes: Self.elf64(code: Self.checksMagic,
            note: Self.note(name: "GNU", type: 3, desc: [1, 2, 3, 4]), entry: 0x100100))
        #expect(plain.entry == .longMode(entry: 0x100100, stack: (4 << 20) - 0x10))
        #expect(plain.stop == .guestExit(code: 0x66))
    }

    @Test("hostile notes are refused in one line naming what is wrong; a PVH image is never entered another way")
    func hostileNotes() throws {
        let (vm, loader) = try HostileInputTests.vm(ram: 2 << 20)
        defer { vm.close() }
        let code = Self.checksMagic
        let noteAt = 64 + 2 * 56 + code.count // 0x1c3
        let cases: [([UInt8], String)] = [
            (Self.elf64(code: code, note: Self.note(name: "Xen", type: 18, desc: Self.le(UInt64(1) << 32))),
             "x.elf: the PVH entry 0x100000000 is above 4 GiB (PVH enters in 32-bit mode)"),
            (Self.elf64(code: code, note: Self.note(name: "Xen", type: 18, desc: [0, 0, 0x10, 0, 0])),
             "x.elf: the PVH entry note (Xen, type 18) holds 5 bytes, not 4 or 8"),
            (Self.elf64(code: code, note: Self.note(name: "Xen", type: 18, desc: Self.le(UInt32(0x100000)), nameSize: 0xffff_ffff)),
             "x.elf: note at file offset \(hexInt(noteAt)) (segment 1) runs past its segment's end \(hexInt(noteAt + 20))"),
            (Self.elf64(code: code, note: Self.note(name: "Xen", type: 18, desc: Self.le(UInt32(0x100000))), noteOffset: 0xffff_ffff_ffff_fff0),
             "x.elf: note segment 1: 20 bytes at file offset 0xfffffffffffffff0 run past 2^64"),
            (Self.elf64(code: code, note: Self.note(name: "Xen", type: 18, desc: Self.le(UInt32(0x100000))), noteSize: 0x1000),
             "x.elf: truncated: note segment 1 needs file bytes up to \(hexInt(noteAt + 0x1000)) but the file has \(hexInt(noteAt + 20))"),
            (Self.elf64(code: code, note: Self.note(name: "Xen", type: 18, desc: Self.le(UInt32(0x100000))), machine: 40),
             "x.elf: ELF machine 40 is neither x86-64 nor i386"),
        ]
        for (image, message) in cases {
            #expect(throws: LoaderError(.image, message)) { try loader.load(image, ImageRequest(path: "x.elf")) }
        }
    }

    @Test("a PVH kernel's module lies where QEMU's x86_load_linux puts it: below RAM - 160 KiB - 1, size subtracted, on a page; listed in hvm_start_info; one too big is refused")
    func modulePlacement() throws {
        let (vm, loader) = try HostileInputTests.vm(ram: 4 << 20)
        defer { vm.close() }
        let contents = Array("module contents".utf8)
        let module = try VMMProcess.temp("pvh-high-module", contents)
        let image = Self.elf64(code: Self.checksMagic, note: Self.note(name: "Xen", type: 18, desc: Self.le(UInt32(0x100000))))
        let entry = try loader.load(image, ImageRequest(path: "pvh", initrd: module))
        guard case let .protected32(_, _, ebx, _) = entry else { Issue.record("\(entry)"); return }
        // initrd_max = 0x400000 - 0x28000 - 1 = 0x3d7fff; (0x3d7fff - 15) & ~0xfff.
        #expect(try vm.memory.read(UInt64(ebx) + 12, as: UInt32.self) == 1, "nr_modules")
        let list = try vm.memory.read(UInt64(ebx) + 16, as: UInt64.self)
        #expect(try vm.memory.read(list, as: UInt64.self) == 0x3d7000)
        #expect(try vm.memory.read(list + 8, as: UInt64.self) == UInt64(contents.count))
        #expect(try vm.memory.read(0x3d7000, as: UInt64.self) == UInt64(littleEndian: contents.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }))
        let big = try VMMProcess.temp("pvh-big-module", [UInt8](repeating: 1, count: 0x3d7fff))
        #expect(throws: LoaderError(.image, "\(big): module (initrd) of 4030463 bytes does not fit below 0x3d7fff (RAM below the BIOS's 160 KiB of tables)")) {
            try loader.load(image, ImageRequest(path: "pvh", initrd: big))
        }
        let low = try VMMProcess.temp("pvh-low-module", [UInt8](repeating: 1, count: 0x2d8000))
        #expect(throws: LoaderError(.image, "\(low): module (initrd) [0xff000..<0x3d7000] overlaps the kernel's [0x100000..<0x100105]")) {
            try loader.load(image, ImageRequest(path: "pvh", initrd: low))
        }
    }

    @Test("a PVH kernel written for QEMU: start info magic and version 1, the RSDP, the command line alone, its module, the BIOS's memory map (RAM below and above the hole, SeaBIOS's and QEMU's reserved ranges); e_entry unused")
    func launcher() throws {
        let module = try VMMProcess.temp("pvh-module.txt", Array("module contents".utf8))
        let r = try VMMProcess.run(["run", VMMProcess.guest("pvh.elf"), "--append", "console=ttyS0 quiet", "--initrd", module, "--memory", "4G"])
        #expect(r.stdout == """
            pvh: magic 336EC578 version 00000001 rsdp 000F2000[RSD PTR ]
            cmdline: console=ttyS0 quiet
            module: module contents
            mmap 0000000000000000 len 000000000009FC00 type 00000001
            mmap 000000000009FC00 len 0000000000000400 type 00000002
            mmap 00000000000F0000 len 0000000000010000 type 00000002
            mmap 0000000000100000 len 00000000BFEE0000 type 00000001
            mmap 00000000BFFE0000 len 0000000000020000 type 00000002
            mmap 00000000FEFFC000 len 0000000000004000 type 00000002
            mmap 00000000FFFC0000 len 0000000000040000 type 00000002
            mmap 0000000100000000 len 0000000040000000 type 00000001

            """)
        #expect(r.stderr == "")
        #expect(r.status == (0x21 << 1) | 1)
        // No -append: an empty command line, still given; no module: none listed.
        let bare = try VMMProcess.run(["run", VMMProcess.guest("pvh.elf")])
        #expect(bare.stdout.hasPrefix("pvh: magic 336EC578 version 00000001 rsdp 000F2000[RSD PTR ]\ncmdline: \nmodule: \nmmap "))
        // Without the in-kernel irqchip there are no ACPI tables: rsdp_paddr is 0.
        let none = try VMMProcess.run(["run", VMMProcess.guest("pvh.elf"), "--irqchip", "none"])
        #expect(none.stdout.hasPrefix("pvh: magic 336EC578 version 00000001 rsdp 00000000\ncmdline: "))
        #expect(bare.status == (0x21 << 1) | 1)
    }
}

private func hexInt(_ v: Int) -> String { "0x" + String(v, radix: 16) }
