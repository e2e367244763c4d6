import VMMKit

/// The little JSON the control API speaks, without Foundation: request bodies are one
/// flat object whose values are strings (`{"state": "Paused"}`), parsed strictly
/// (hostile input: every byte checked, duplicates and trailing bytes refused); answers
/// are written with `FlatJSON.quote`.
public enum FlatJSON {
    /// Parses `{"key": "value", ...}`; throws `.badRequest` naming the first problem.
    public static func parseObject(_ bytes: [UInt8]) throws(ControlError) -> [String: String] {
        var p = Parser(bytes: bytes)
        return try p.object()
    }

    /// `s` as a JSON string literal, quotes included.
    public static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where u.value < 0x20:
                let hex = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }

    /// The error body every failed request gets (Firecracker's shape).
    public static func fault(_ message: String) -> String { "{\"fault_message\": \(quote(message))}" }

    private struct Parser {
        let bytes: [UInt8]
        var i = 0

        func fail(_ what: String) -> ControlError { .badRequest("malformed JSON body at byte \(i): \(what)") }

        mutating func skipSpace() {
            while i < bytes.count, [0x20, 0x09, 0x0a, 0x0d].contains(bytes[i]) { i += 1 }
        }

        mutating func expect(_ c: UInt8, _ what: String) throws(ControlError) {
            skipSpace()
            guard i < bytes.count, bytes[i] == c else { throw fail("expected \(what)") }
            i += 1
        }

        mutating func object() throws(ControlError) -> [String: String] {
            var fields: [String: String] = [:]
            try expect(UInt8(ascii: "{"), "'{'")
            skipSpace()
            if i < bytes.count, bytes[i] == UInt8(ascii: "}") {
                i += 1
            } else {
                while true {
                    skipSpace()
                    let key = try string()
                    try expect(UInt8(ascii: ":"), "':'")
                    skipSpace()
                    guard i < bytes.count else { throw fail("unterminated object") }
                    guard bytes[i] == UInt8(ascii: "\"") else {
                        throw ControlError.badRequest("field \(key.quotedForMessage) must be a string")
                    }
                    let value = try string()
                    guard fields.updateValue(value, forKey: key) == nil else {
                        throw ControlError.badRequest("field \(key.quotedForMessage) given twice")
                    }
                    skipSpace()
                    guard i < bytes.count else { throw fail("unterminated object") }
                    if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                    if bytes[i] == UInt8(ascii: "}") { i += 1; break }
                    throw fail("expected ',' or '}'")
                }
            }
            skipSpace()
            guard i == bytes.count else { throw fail("bytes after the object") }
            return fields
        }

        mutating func string() throws(ControlError) -> String {
            guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("expected a string") }
            i += 1
            var scalars = String.UnicodeScalarView()
            var raw: [UInt8] = []
            func flushRaw() throws(ControlError) {
                guard !raw.isEmpty else { return }
                guard let s = String(validating: raw, as: UTF8.self) else { throw ControlError.badRequest("malformed JSON body: invalid UTF-8 in a string") }
                scalars.append(contentsOf: s.unicodeScalars)
                raw.removeAll(keepingCapacity: true)
            }
            while true {
                guard i < bytes.count else { throw fail("unterminated string") }
                let c = bytes[i]
                i += 1
                switch c {
                case UInt8(ascii: "\""):
                    try flushRaw()
                    return String(scalars)
                case UInt8(ascii: "\\"):
                    try flushRaw()
                    guard i < bytes.count else { throw fail("unterminated escape") }
                    let e = bytes[i]
                    i += 1
                    switch e {
                    case UInt8(ascii: "\""): scalars.append("\"")
                    case UInt8(ascii: "\\"): scalars.append("\\")
                    case UInt8(ascii: "/"): scalars.append("/")
                    case UInt8(ascii: "b"): scalars.append("\u{8}")
                    case UInt8(ascii: "f"): scalars.append("\u{c}")
                    case UInt8(ascii: "n"): scalars.append("\n")
                    case UInt8(ascii: "r"): scalars.append("\r")
                    case UInt8(ascii: "t"): scalars.append("\t")
                    case UInt8(ascii: "u"): scalars.append(try unicodeEscape())
                    default: throw fail("unknown escape")
                    }
                case 0..<0x20:
                    throw fail("control character in a string")
                default:
                    raw.append(c)
                }
            }
        }

        mutating func hex4() throws(ControlError) -> UInt32 {
            guard bytes.count - i >= 4 else { throw fail("short \\u escape") }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = bytes[i]
                i += 1
                let d: UInt32
                switch c {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0"))
                case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - UInt8(ascii: "a") + 10)
                case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - UInt8(ascii: "A") + 10)
                default: throw fail("bad hex digit in \\u escape")
                }
                v = v << 4 | d
            }
            return v
        }

        mutating func unicodeEscape() throws(ControlError) -> Unicode.Scalar {
            let hi = try hex4()
            if (0xd800..<0xdc00).contains(hi) {
                guard bytes.count - i >= 2, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else {
                    throw fail("lone surrogate")
                }
                i += 2
                let lo = try hex4()
                guard (0xdc00..<0xe000).contains(lo) else { throw fail("lone surrogate") }
                return Unicode.Scalar(0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00))!
            }
            guard let s = Unicode.Scalar(hi) else { throw fail("lone surrogate") }
            return s
        }
    }
}
