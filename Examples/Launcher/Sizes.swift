import VMMKit

/// Parses sizes like QEMU's `-m`: decimal digits with an optional K, M, G, T, P or E
/// suffix (binary units, "KB" and "KiB" too; a bare number means MiB, as QEMU reads it),
/// or B for bytes (QEMU's too: "3145728B" was read as 3 TiB); addresses (`parseAddress`)
/// also in hex (0x...). What parses may still be below or above what the launcher maps
/// (`RAMLayout.minMemory`, `maxMemory`) or not whole pages (the launcher checks all
/// three, naming the limit: "0" is a size, too small, not "not a size").
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
                return UInt64(plainDecimal: t)
            }
        }
        guard let last = t.last else { return nil }
        let shifts: [Character: UInt64] = ["K": 10, "M": 20, "G": 30, "T": 40, "P": 50, "E": 60]
        if let shift = shifts[last] {
            guard let n = UInt64(plainDecimal: t.dropLast()), n <= (UInt64(1) << (63 - shift)) else { return nil }
            return n << shift
        }
        guard let n = UInt64(plainDecimal: t), n < (1 << 43) else { return nil }
        return n << 20
    }

    static func parseAddress(_ text: String) -> UInt64? {
        UInt64(plainNumber: text.lowercased())
    }

    /// Seconds as a flag gives them: decimal digits, optionally a point and more digits
    /// ("2", "0.25"). `Double(_:)` alone also read "0x10" as 16, and took "inf", "nan",
    /// "1e999" and " 5" with its space.
    static func parseSeconds(_ text: String) -> Double? {
        let parts = text.utf8.split(separator: UInt8(ascii: "."), maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy { (0x30...0x39).contains($0) } }) else { return nil }
        return Double(text)
    }

    static func describe(_ bytes: UInt64) -> String {
        if bytes % (1 << 30) == 0 { return "\(bytes >> 30) GiB" }
        if bytes % (1 << 20) == 0 { return "\(bytes >> 20) MiB" }
        return "\(bytes >> 10) KiB"
    }
}

/// The launcher's guest-physical RAM layout, as QEMU's pc machine (i440FX, pc_piix.c
/// `pc_init1` with gigabyte_align): RAM below 3.5 GiB lies wholly below the MMIO hole;
/// from 3.5 GiB up, 3 GiB of it does and the rest goes from 4 GiB up, at most 1 TiB of it.
/// No device of the machine lies in [3 GiB, 3.5 GiB) (the VGA framebuffer is at
/// 0xfd000000, the HPET, I/O APIC and local APIC above it), so RAM can reach there.
enum RAMLayout {
    /// Where RAM below 4 GiB ends when it is split (QEMU's gigabyte-aligned split).
    static let holeStart: UInt64 = 0xc000_0000
    /// QEMU's default max-ram-below-4g: RAM of less stays whole below 4 GiB.
    static let splitFrom: UInt64 = 0xe000_0000
    static let maxHighRAM: UInt64 = 1 << 40
    /// What `--memory` and a snapshot's launcher state may ask for.
    static let maxMemory = holeStart + maxHighRAM
    static let minMemory: UInt64 = 2 << 20

    /// RAM below the hole and from 4 GiB up for `memory` bytes, as QEMU's `pc` splits it.
    static func split(_ memory: UInt64) -> (low: UInt64, high: UInt64) {
        let low = memory < splitFrom ? memory : holeStart
        return (low, memory - low)
    }
}

extension String {
    func replacingSuffix(_ suffix: String, with other: String) -> String {
        hasSuffix(suffix) ? String(dropLast(suffix.count)) + other : self
    }
}

func hex<T: BinaryInteger>(_ value: T) -> String { "0x" + String(value, radix: 16) }
