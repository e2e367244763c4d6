@testable import Launcher
import Testing

/// `--memory` as QEMU's `-m` reads it.
@Suite("--memory sizes, as QEMU's -m")
struct SizesTests {
    @Test("K to E suffixes in binary units, with or without B/iB; a bare number is MiB")
    func suffixes() {
        let cases: [(String, UInt64?)] = [
            ("64", 64 << 20), ("64M", 64 << 20), ("64mib", 64 << 20), ("512K", 512 << 10), ("2G", 2 << 30),
            ("1T", 1 << 40), ("1tb", 1 << 40), ("1024G", 1 << 40), ("1P", 1 << 50), ("8E", 1 << 63),
            // Past 2^63, zero, no digits, a fraction, a sign: not a size.
            ("9E", nil), ("8193P", nil), ("0T", nil), ("T", nil), ("", nil), ("1.5G", nil), ("-1M", nil), ("1Z", nil),
        ]
        for (text, bytes) in cases {
            #expect(Sizes.parseMemory(text) == bytes, "\(text)")
        }
    }
}
