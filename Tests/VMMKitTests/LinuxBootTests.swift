import Foundation
import Testing
import VMMKit
import VMMLoader

/// Linux bzImages through the 64-bit boot protocol. Linux itself cannot boot on these
/// machines in useful time (emulated ring 0), so the kernel is one in shape only
/// (Examples/GuestImages/qemu/bzimage.S): the setup header of protocol 2.15 and a
/// 64-bit entry that prints what its zero page says.
@Suite("Linux bzImage boot on real KVM", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct LinuxBootTests {
    static func image() throws -> [UInt8] {
        try [UInt8](Data(contentsOf: URL(fileURLWithPath: VMMProcess.guest("bzImage"))))
    }

    @Test("vmm run: long mode at the kernel's +0x200, RSI at the zero page: type_of_loader 0xb0 (QEMU's), CAN_USE_HEAP, the RSDP, the command line, the initrd, the e820 table as SeaBIOS reports it under QEMU (the EBDA, BIOS area, high table zone, KVM's identity map and TSS and BIOS ROM reserved)")
    func launcher() throws {
        let initrd = try VMMProcess.temp("linux-initrd.txt", Array("initramfs".utf8))
        let r = try VMMProcess.run(["run", VMMProcess.guest("bzImage"), "--append", "console=ttyS0 root=/dev/vda",
                                    "--initrd", initrd, "--memory", "4G"])
        #expect(r.stdout == """
            linux: type_of_loader 000000B0 loadflags 00000081 acpi_rsdp_addr 000F2000
            cmdline: console=ttyS0 root=/dev/vda
            initrd: initramfs
            e820
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
        #expect(r.status == (0x22 << 1) | 1)
    }

    @Test("the loader's entry state: long mode at +0x200, RSI the zero page in the table window; no firmware tables, no RSDP")
    func entryState() throws {
        let r = try ImageLoaderTests.boot(ImageRequest(path: "bzImage"), bytes: try Self.image())
        #expect(r.entry == .linux64(entry: 0x100200, bootParams: 0xc000, tables: 0))
        #expect(String(decoding: r.console, as: UTF8.self).hasPrefix("linux: type_of_loader 000000B0 loadflags 00000081 acpi_rsdp_addr 00000000\ncmdline: \ninitrd: \ne820\n"))
        #expect(r.stop == .guestExit(code: 0x22))
    }

    @Test("hostile or unbootable headers are refused in one line naming what is wrong")
    func hostileHeaders() throws {
        let (vm, loader) = try HostileInputTests.vm(ram: 4 << 20)
        defer { vm.close() }
        let good = try Self.image()
        func with(_ at: Int, _ bytes: [UInt8]) -> [UInt8] { var b = good; b.replaceSubrange(at..<at + bytes.count, with: bytes); return b }
        let size = "0x" + String(good.count, radix: 16)
        let cases: [([UInt8], LoaderError)] = [
            (with(0x206, [0x0b, 0x02]), LoaderError(.image, "k: boot protocol 2.11 without a 64-bit entry (XLF_KERNEL_64, protocol 2.12 and later) cannot be booted: there is no BIOS for its real-mode setup")),
            (with(0x236, [0, 0]), LoaderError(.image, "k: boot protocol 2.15 without a 64-bit entry (XLF_KERNEL_64, protocol 2.12 and later) cannot be booted: there is no BIOS for its real-mode setup")),
            (with(0x201, [0x10]), LoaderError(.image, "k: the setup header ends at 0x212; boot protocol 2.12 needs it to 0x26c")),
            (with(0x201, [0x04]), LoaderError(.image, "k: the setup header ends at 0x206, before its version")),
            (Array(good[..<0x206]), LoaderError(.image, "k: truncated: the setup header ends at 0x26c but the file has 0x206 bytes")),
            (Array(good[..<0x240]), LoaderError(.image, "k: truncated: the setup header ends at 0x26c but the file has 0x240 bytes")),
            // pref_address 16 MiB (x86-64's LOAD_PHYSICAL_ADDR): init_size counts from there.
            (with(0x258, [0, 0, 0, 1, 0, 0, 0, 0]), LoaderError(.image, "k: kernel (run at 0x1000000, init_size 0x100000) [0x100000..<0x1100000] lies outside guest RAM [0x0..<0x400000] (4 MiB)")),
            (with(0x1f1, [200]), LoaderError(.image, "k: truncated: 200 setup sectors put the kernel at file offset 0x19200, past the file's \(size) bytes")),
            (with(0x260, [0xff, 0xff, 0xff, 0xff]), LoaderError(.image, "k: kernel (run at 0x100000, init_size 0xffffffff) [0x100000..<0x1000fffff] lies outside guest RAM [0x0..<0x400000] (4 MiB)")),
        ]
        for (image, error) in cases {
            #expect(throws: error) { try loader.load(image, ImageRequest(path: "k")) }
        }
        #expect(throws: LoaderError(.request, "the command line (append) is 11 bytes; this kernel takes at most 10 (cmdline_size)", fields: [.append])) {
            try loader.load(with(0x238, [10, 0, 0, 0]), ImageRequest(path: "k", append: "console=tty"))
        }
        // An initrd that does not fit between the kernel's init_size and initrd_addr_max.
        let initrd = try VMMProcess.temp("linux-big-initrd", [UInt8](repeating: 0x42, count: 3 << 20))
        #expect(throws: LoaderError(.image, "\(initrd): initrd of 3145728 bytes does not fit between the kernel's end 0x200000 and 0x3d7fff (initrd_addr_max, or RAM below the BIOS's 160 KiB of tables)")) {
            try loader.load(good, ImageRequest(path: "k", initrd: initrd))
        }
    }
}
