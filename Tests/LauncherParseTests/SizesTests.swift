@testable import Launcher
import Testing

/// `--memory` as QEMU's `-m` reads it.
@Suite("--memory sizes, as QEMU's -m")
struct SizesTests {
    @Test("K to E suffixes in binary units, with or without B/iB; a bare number is MiB; B alone is bytes")
    func suffixes() {
        let cases: [(String, UInt64?)] = [
            ("64", 64 << 20), ("64M", 64 << 20), ("64mib", 64 << 20), ("512K", 512 << 10), ("2G", 2 << 30),
            ("1T", 1 << 40), ("1tb", 1 << 40), ("1024G", 1 << 40), ("1P", 1 << 50), ("8E", 1 << 63),
            // Past 2^63, no digits, a fraction, a sign: not a size. Zero is one (below the
            // launcher's 2M, which it names).
            ("0", 0), ("0T", 0), ("00M", 0), ("0B", 0), ("9E", nil), ("8193P", nil), ("T", nil), ("", nil), ("1.5G", nil), ("-1M", nil), ("1Z", nil),
            ("+64M", nil), ("+64", nil), (" 64", nil), ("6_4M", nil),
            // B alone is bytes, as QEMU's (this read "3145728B" as 3 TiB); hex is not a size.
            ("3145728B", 3 << 20), ("4096b", 4096), ("B", nil), ("0x8000000", nil), ("1.5B", nil),
            ("4096iB", nil), ("iB", nil), ("64MiB", 64 << 20), ("1KIB", 1 << 10),
        ]
        for (text, bytes) in cases {
            #expect(Sizes.parseMemory(text) == bytes, "\(text)")
        }
    }

    @Test("--load-addr and --entry: decimal digits, or 0x and hex digits; no sign")
    func addresses() {
        let cases: [(String, UInt64?)] = [
            ("1048576", 0x100000), ("0x100000", 0x100000), ("0X1000", 0x1000), ("0xFFFFFFFFFFFFFFFF", .max),
            ("0x10000000000000000", nil), ("0x", nil), ("0x+10", nil), ("0x-0", nil), ("+16", nil), ("-1", nil),
            ("0x 10", nil), ("1_000", nil), ("", nil),
        ]
        for (text, address) in cases {
            #expect(Sizes.parseAddress(text) == address, "\(text)")
        }
    }

    @Test("RAM split as QEMU's pc (pc_init1, gigabyte_align): whole below the hole under 3.5 GiB, 3 GiB of it from 3.5 GiB up")
    func ramSplit() {
        let cases: [(UInt64, UInt64, UInt64)] = [
            (128 << 20, 128 << 20, 0), (3 << 30, 3 << 30, 0), (0xd000_0000, 0xd000_0000, 0),
            (0xdfff_f000, 0xdfff_f000, 0), (0xe000_0000, 0xc000_0000, 0x2000_0000), (5 << 30, 3 << 30, 2 << 30),
            (RAMLayout.maxMemory, 3 << 30, 1 << 40),
        ]
        for (memory, low, high) in cases {
            #expect(RAMLayout.split(memory) == (low, high), "\(hex(memory))")
        }
    }

    @Test("a restore takes RAM as QEMU splits it, or a 3 to 3.5 GiB machine's old split at 3 GiB; any other layout is refused naming both")
    func restoredSplit() throws {
        let m: UInt64 = 0xd000_0000
        #expect(try Launcher.restoredLowRAM([("ram", 0, m)], memory: m, dir: "d") == m)
        // Snapshots taken before the launcher followed QEMU here: the guest booted with this map.
        #expect(try Launcher.restoredLowRAM([("ram", 0, 3 << 30), ("ram-high", 1 << 32, 0x1000_0000)], memory: m, dir: "d") == 3 << 30)
        #expect(try Launcher.restoredLowRAM([("ram", 0, 3 << 30), ("ram-high", 1 << 32, 2 << 30)], memory: 5 << 30, dir: "d") == 3 << 30)
        func refusal(_ regions: [(name: String, address: UInt64, size: UInt64)], _ memory: UInt64) -> String? {
            do { _ = try Launcher.restoredLowRAM(regions, memory: memory, dir: "d"); return nil } catch {
                return error.status == .snapshot ? error.message : "status \(error.status)"
            }
        }
        #expect(refusal([("ram", 0, 3 << 30)], m)
            == "cannot restore d: the launcher state says 3328 MiB of memory (ram 0x0 0xd0000000), the snapshot's RAM regions are ram 0x0 0xc0000000")
        #expect(refusal([("vga-vram", 0xfd00_0000, 16 << 20)], 128 << 20)
            == "cannot restore d: the launcher state says 128 MiB of memory (ram 0x0 0x8000000), the snapshot's RAM regions are none")
    }
}
