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
            // Past 2^63, zero, no digits, a fraction, a sign: not a size.
            ("9E", nil), ("8193P", nil), ("0T", nil), ("T", nil), ("", nil), ("1.5G", nil), ("-1M", nil), ("1Z", nil),
            ("+64M", nil), ("+64", nil), (" 64", nil), ("6_4M", nil),
            // B alone is bytes, as QEMU's (this read "3145728B" as 3 TiB); hex is not a size.
            ("3145728B", 3 << 20), ("4096b", 4096), ("0B", nil), ("B", nil), ("0x8000000", nil), ("1.5B", nil),
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
}
