extension FixedWidthInteger where Self: UnsignedInteger {
    /// A number as VMMKit's text formats and flags write one: decimal digits, or `0x` and
    /// hex digits (either case); nil for anything else or a value that does not fit.
    /// `UInt64(_:radix:)` alone also takes a sign ("+5", "0x-0", "0x+10"): a file that
    /// says "0x+10" is not one this code wrote, and is refused rather than read as 16.
    public init?(plainNumber text: some StringProtocol) {
        if text.hasPrefix("0x") {
            let digits = text.dropFirst(2)
            guard !digits.isEmpty, digits.utf8.allSatisfy(isASCIIHexDigit) else { return nil }
            self.init(digits, radix: 16)
        } else {
            self.init(plainDecimal: text)
        }
    }

    /// Decimal digits only: no sign, space, underscore or prefix.
    public init?(plainDecimal text: some StringProtocol) {
        guard !text.isEmpty, text.utf8.allSatisfy({ (0x30...0x39).contains($0) }) else { return nil }
        self.init(text, radix: 10)
    }
}

@inline(__always)
private func isASCIIHexDigit(_ c: UInt8) -> Bool {
    (0x30...0x39).contains(c) || (0x41...0x46).contains(c) || (0x61...0x66).contains(c)
}
