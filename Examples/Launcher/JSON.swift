import VMMKit

/// A strict JSON (RFC 8259) reader for config files, so the launcher needs no
/// Foundation (which alone adds ~10 ms of dynamic loading and several MiB of RSS).
/// Input is hostile: nesting is bounded, duplicate keys and trailing bytes are refused,
/// and every error names the byte offset.
enum JSONValue: Equatable {
    case string(String), number(JSONNumber), bool(Bool), array([JSONValue]), object([String: JSONValue]), null

    struct ParseError: Error, CustomStringConvertible {
        let message: String
        let offset: Int
        var description: String { "\(message) at byte \(offset)" }
    }

    /// Deeper nesting than this is refused (a config needs 2 levels).
    static let maxDepth = 64

    static func parse(_ bytes: [UInt8]) throws(ParseError) -> JSONValue {
        var reader = Reader(bytes: bytes)
        reader.skipSpace()
        let value = try reader.value(depth: 0)
        reader.skipSpace()
        guard reader.at == bytes.count else { throw reader.fail("unexpected data after the JSON value") }
        return value
    }

    private struct Reader {
        let bytes: [UInt8]
        var at = 0

        func fail(_ message: String) -> ParseError { ParseError(message: message, offset: at) }

        var peek: UInt8? { at < bytes.count ? bytes[at] : nil }

        mutating func skipSpace() {
            while let b = peek, b == 0x20 || b == 0x09 || b == 0x0a || b == 0x0d { at += 1 }
        }

        mutating func expect(_ word: String) throws(ParseError) {
            for b in word.utf8 {
                guard peek == b else { throw fail("invalid literal (expected '\(word)')") }
                at += 1
            }
        }

        mutating func value(depth: Int) throws(ParseError) -> JSONValue {
            guard depth < JSONValue.maxDepth else { throw fail("nesting deeper than \(JSONValue.maxDepth) levels") }
            guard let b = peek else { throw fail("unexpected end of input") }
            switch b {
            case UInt8(ascii: "{"): return try object(depth: depth)
            case UInt8(ascii: "["): return try array(depth: depth)
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): try expect("true"); return .bool(true)
            case UInt8(ascii: "f"): try expect("false"); return .bool(false)
            case UInt8(ascii: "n"): try expect("null"); return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
            default: throw fail("unexpected character \(String(Unicode.Scalar(b)).quotedForMessage)")
            }
        }

        mutating func object(depth: Int) throws(ParseError) -> JSONValue {
            at += 1
            var result: [String: JSONValue] = [:]
            skipSpace()
            if peek == UInt8(ascii: "}") { at += 1; return .object(result) }
            while true {
                skipSpace()
                guard peek == UInt8(ascii: "\"") else { throw fail("expected a string key") }
                let keyAt = at
                let key = try string()
                guard result[key] == nil else { throw ParseError(message: "duplicate key \(key.quotedForMessage)", offset: keyAt) }
                skipSpace()
                guard peek == UInt8(ascii: ":") else { throw fail("expected ':' after key \(key.quotedForMessage)") }
                at += 1
                skipSpace()
                result[key] = try value(depth: depth + 1)
                skipSpace()
                if peek == UInt8(ascii: ",") { at += 1; continue }
                guard peek == UInt8(ascii: "}") else { throw peek == nil ? fail("unexpected end of input") : fail("expected ',' or '}'") }
                at += 1
                return .object(result)
            }
        }

        mutating func array(depth: Int) throws(ParseError) -> JSONValue {
            at += 1
            var result: [JSONValue] = []
            skipSpace()
            if peek == UInt8(ascii: "]") { at += 1; return .array(result) }
            while true {
                skipSpace()
                result.append(try value(depth: depth + 1))
                skipSpace()
                if peek == UInt8(ascii: ",") { at += 1; continue }
                guard peek == UInt8(ascii: "]") else { throw peek == nil ? fail("unexpected end of input") : fail("expected ',' or ']'") }
                at += 1
                return .array(result)
            }
        }

        mutating func hex4() throws(ParseError) -> UInt32 {
            var v: UInt32 = 0
            for _ in 0..<4 {
                guard let b = peek else { throw fail("unexpected end of input in a \\u escape") }
                let d: UInt8
                switch b {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): d = b - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): d = b - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): d = b - UInt8(ascii: "A") + 10
                default: throw fail("invalid hex digit in a \\u escape")
                }
                v = v << 4 | UInt32(d)
                at += 1
            }
            return v
        }

        mutating func string() throws(ParseError) -> String {
            at += 1 // the opening quote
            var out: [UInt8] = []
            while true {
                guard let b = peek else { throw fail("unterminated string") }
                at += 1
                switch b {
                case UInt8(ascii: "\""):
                    // Invalid UTF-8 in the file is refused, not repaired.
                    guard let s = String(validating: out, as: UTF8.self) else { throw fail("string is not valid UTF-8") }
                    return s
                case UInt8(ascii: "\\"):
                    guard let e = peek else { throw fail("unterminated string") }
                    at += 1
                    switch e {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                    case UInt8(ascii: "b"): out.append(0x08)
                    case UInt8(ascii: "f"): out.append(0x0c)
                    case UInt8(ascii: "n"): out.append(0x0a)
                    case UInt8(ascii: "r"): out.append(0x0d)
                    case UInt8(ascii: "t"): out.append(0x09)
                    case UInt8(ascii: "u"):
                        var scalar = try hex4()
                        if (0xd800..<0xdc00).contains(scalar) {
                            guard peek == UInt8(ascii: "\\") else { throw fail("unpaired surrogate in a \\u escape") }
                            at += 1
                            guard peek == UInt8(ascii: "u") else { throw fail("unpaired surrogate in a \\u escape") }
                            at += 1
                            let low = try hex4()
                            guard (0xdc00..<0xe000).contains(low) else { throw fail("unpaired surrogate in a \\u escape") }
                            scalar = 0x10000 + ((scalar - 0xd800) << 10) + (low - 0xdc00)
                        }
                        guard let u = Unicode.Scalar(scalar) else { throw fail("unpaired surrogate in a \\u escape") }
                        // Every string a config holds reaches a C string (a path, a name, a
                        // command line), which a NUL would silently cut short.
                        guard scalar != 0 else { throw fail("\\u0000 in a string (no path, name or command line holds a NUL)") }
                        out.append(contentsOf: Array(String(Character(u)).utf8))
                    default:
                        throw fail("invalid escape \("\\\(Unicode.Scalar(e))".quotedForMessage)")
                    }
                case 0..<0x20:
                    throw fail("control character in a string")
                default:
                    out.append(b)
                }
            }
        }

        /// RFC 8259's grammar exactly: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
        /// Kept as text: the key that reads it knows whether it wants an exact integer or
        /// seconds, and names itself when the number does not fit ("1e999" included).
        mutating func number() throws(ParseError) -> JSONNumber {
            let start = at
            func digits(_ r: inout Reader) -> Int {
                var n = 0
                while let b = r.peek, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b) { r.at += 1; n += 1 }
                return n
            }
            if peek == UInt8(ascii: "-") { at += 1 }
            if peek == UInt8(ascii: "0") {
                at += 1
            } else {
                guard digits(&self) > 0 else { throw fail("invalid number") }
            }
            if peek == UInt8(ascii: ".") {
                at += 1
                guard digits(&self) > 0 else { throw fail("invalid number (no digits after '.')") }
            }
            if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
                at += 1
                if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { at += 1 }
                guard digits(&self) > 0 else { throw fail("invalid number (no digits in the exponent)") }
            }
            return JSONNumber(text: String(decoding: bytes[start..<at], as: UTF8.self))
        }
    }
}
