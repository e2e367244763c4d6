/// The machine's UUID (`--uuid`, config `uuid`, QEMU's `-uuid`): the SMBIOS system UUID
/// and fw_cfg's FW_CFG_UUID (item 0x02). Written as QEMU reads it: 32 hex digits in the
/// groups 8-4-4-4-12, either case; kept in RFC 4122 byte order. Pure: fuzzed through the
/// config and launcher-state parsers.
struct MachineUUID: Equatable {
    let bytes: [UInt8]

    static let zero = MachineUUID(bytes: [UInt8](repeating: 0, count: 16))

    private init(bytes: [UInt8]) { self.bytes = bytes }

    /// nil unless `text` is exactly 8-4-4-4-12 hex digits.
    init?(_ text: String) {
        let groups = text.split(separator: "-", omittingEmptySubsequences: false)
        guard groups.map(\.utf8.count) == [8, 4, 4, 4, 12] else { return nil }
        var bytes: [UInt8] = []
        for group in groups {
            let digits = Array(group.utf8)
            for i in stride(from: 0, to: digits.count, by: 2) {
                guard let high = Self.nibble(digits[i]), let low = Self.nibble(digits[i + 1]) else { return nil }
                bytes.append(high << 4 | low)
            }
        }
        self.bytes = bytes
    }

    /// Lower-case 8-4-4-4-12, as the launcher state keeps it.
    var text: String {
        let hex = bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
        let cuts = [8, 12, 16, 20]
        var out = ""
        for (i, c) in hex.enumerated() {
            if cuts.contains(i) { out.append("-") }
            out.append(c)
        }
        return out
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: c - 0x30
        case 0x41...0x46: c - 0x41 + 10
        case 0x61...0x66: c - 0x61 + 10
        default: nil
        }
    }
}
