import VMMKit

/// A JSON number as the file wrote it (RFC 8259's grammar, which the reader checked),
/// read only when a key says what it holds. Integers are read exactly from their digits:
/// a Double for every number read `"loadAddr": 9007199254740993` as 2^53, and the error
/// that followed named an address the user never gave.
struct JSONNumber: Equatable {
    let text: String

    /// The value as a Double (seconds), nil when it is out of a Double's range ("1e999").
    var double: Double? {
        guard let d = Double(text), d.isFinite else { return nil }
        return d
    }

    /// The exact value when it is a whole number from 0 to 2^64 - 1: "64", "6.4e1",
    /// "640e-1" and "-0" are whole; "1.5", "-1" and "1e20" are not (nil).
    var wholeNumber: UInt64? {
        let b = Array(text.utf8)
        func isDigit(_ i: Int) -> Bool { i < b.count && (0x30...0x39).contains(b[i]) }
        var i = 0
        let negative = b.first == UInt8(ascii: "-")
        if negative { i = 1 }
        var digits: [UInt8] = []
        while isDigit(i) { digits.append(b[i]); i += 1 }
        var fractionDigits = 0
        if i < b.count, b[i] == UInt8(ascii: ".") {
            i += 1
            while isDigit(i) { digits.append(b[i]); fractionDigits += 1; i += 1 }
        }
        var exponent = 0
        if i < b.count, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
            i += 1
            let negativeExponent = i < b.count && b[i] == UInt8(ascii: "-")
            if i < b.count, b[i] == UInt8(ascii: "-") || b[i] == UInt8(ascii: "+") { i += 1 }
            // Held at a million: past that the number is a fraction or has more than 20
            // digits whatever its digits are (the text is at most a 1 MiB file).
            while isDigit(i) { exponent = min(exponent * 10 + Int(b[i] - 0x30), 1_000_000); i += 1 }
            if negativeExponent { exponent = -exponent }
        }
        guard i == b.count, !digits.isEmpty else { return nil }
        guard let first = digits.firstIndex(where: { $0 != UInt8(ascii: "0") }) else { return 0 }
        guard !negative else { return nil }
        // The value is digits x 10^shift: whole when the zeros at the end cover a negative shift.
        var significant = Array(digits[first...])
        var shift = exponent - fractionDigits
        while shift < 0, significant.last == UInt8(ascii: "0") { significant.removeLast(); shift += 1 }
        guard shift >= 0, significant.count + shift <= 20 else { return nil }
        significant += repeatElement(UInt8(ascii: "0"), count: shift)
        return UInt64(plainDecimal: String(decoding: significant, as: UTF8.self))
    }

    /// The number as an error message shows it: as written, cut if very long.
    var shown: String { text.asOneLine(limit: 40) }
}
