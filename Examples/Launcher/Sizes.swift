import VMMKit

/// Parses sizes like QEMU's `-m`: decimal digits with an optional K, M, G, T, P or E
/// suffix (binary units, "KB" and "KiB" too; a bare number means MiB, as QEMU reads it),
/// or B for bytes (QEMU's too: "3145728B" was read as 3 TiB); addresses (`parseAddress`)
/// also in hex (0x...). What parses may still be above what the launcher maps
/// (`RAMLayout.maxMemory`) or not whole pages (the launcher checks both).
enum Sizes {
    static func parseMemory(_ text: String) -> UInt64? {
        var t = text.uppercased()
        if t.hasSuffix("IB") {
            t.removeLast(2)
            // "KiB" to "EiB": a unit must come before it ("4096iB" was 4096 MiB).
            guard let unit = t.last, "KMGTPE".contains(unit) else { return nil }
        } else if t.hasSuffix("B") {
            t.removeLast()
            if let c = t.last, c.isASCII, c.isNumber {
                guard let n = UInt64(plainDecimal: t), n > 0 else { return nil }
                return n
            }
        }
        guard let last = t.last else { return nil }
        let shifts: [Character: UInt64] = ["K": 10, "M": 20, "G": 30, "T": 40, "P": 50, "E": 60]
        if let shift = shifts[last] {
            guard let n = UInt64(plainDecimal: t.dropLast()), n > 0, n <= (UInt64(1) << (63 - shift)) else { return nil }
            return n << shift
        }
        guard let n = UInt64(plainDecimal: t), n > 0, n < (1 << 43) else { return nil }
        return n << 20
    }

    static func parseAddress(_ text: String) -> UInt64? {
        UInt64(plainNumber: text.lowercased())
    }

    static func describe(_ bytes: UInt64) -> String {
        if bytes % (1 << 30) == 0 { return "\(bytes >> 30) GiB" }
        if bytes % (1 << 20) == 0 { return "\(bytes >> 20) MiB" }
        return "\(bytes >> 10) KiB"
    }
}

/// The launcher's guest-physical RAM layout, as QEMU's pc machine (gigabyte-aligned):
/// RAM up to 3 GiB below the MMIO hole, the rest from 4 GiB up, at most 1 TiB of it.
enum RAMLayout {
    static let holeStart: UInt64 = 0xc000_0000
    static let maxHighRAM: UInt64 = 1 << 40
    /// What `--memory` and a snapshot's launcher state may ask for.
    static let maxMemory = holeStart + maxHighRAM
    static let minMemory: UInt64 = 2 << 20
}

extension String {
    func replacingSuffix(_ suffix: String, with other: String) -> String {
        hasSuffix(suffix) ? String(dropLast(suffix.count)) + other : self
    }
}

func hex<T: BinaryInteger>(_ value: T) -> String { "0x" + String(value, radix: 16) }
