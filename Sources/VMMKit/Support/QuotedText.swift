extension StringProtocol {
    /// This text as an error message shows text that came from input — a config key, a
    /// manifest token, a JSON field name, a recording line: in single quotes, on one line
    /// and bounded. Input may hold a newline (a second, forged line of a log), an escape
    /// sequence (a terminal that clears or retitles itself when the error is printed), a
    /// bidirectional override (text that reads otherwise than it is) or megabytes; each
    /// such scalar is written as `\u{XX}`, quotes and backslashes are escaped, and past
    /// `QuotedTextLimit.scalars` scalars the text is cut and its size in bytes given.
    /// Plain text reads as before: `'ram'`.
    public var quotedForMessage: String { quotedForMessage(limit: QuotedTextLimit.scalars) }

    /// `quotedForMessage`, cut after `limit` scalars of the text.
    public func quotedForMessage(limit: Int) -> String {
        let (text, cut) = escaped(limit: limit, quoting: true)
        return "'" + text + (cut ? "…' (\(utf8.count) bytes)" : "'")
    }

    /// A whole message as one line: the hidden scalars of `quotedForMessage` escaped, the
    /// rest as it is. For the places that print a message assembled from parts some of
    /// which were not quoted — a plugin's failure text, a library's error.
    public var asOneLine: String {
        guard unicodeScalars.contains(where: QuotedTextLimit.isHidden) else { return String(self) }
        var out = ""
        for scalar in unicodeScalars { QuotedTextLimit.append(scalar, to: &out) }
        return out
    }

    /// `asOneLine`, cut after `limit` scalars and followed by the whole size in bytes:
    /// for a message made elsewhere that repeats input text unquoted (ArgumentParser's).
    public func asOneLine(limit: Int) -> String {
        let (text, cut) = escaped(limit: limit, quoting: false)
        return cut ? text + "… (\(utf8.count) bytes)" : text
    }

    /// The first `limit` scalars with the hidden ones escaped (and `'` and `\` too when
    /// `quoting`), and whether scalars were left out.
    private func escaped(limit: Int, quoting: Bool) -> (text: String, cut: Bool) {
        var out = "", shown = 0
        for scalar in unicodeScalars {
            if shown == limit { return (out, true) }
            shown += 1
            switch scalar {
            case "'" where quoting: out += "\\'"
            case "\\" where quoting: out += "\\\\"
            default: QuotedTextLimit.append(scalar, to: &out)
            }
        }
        return (out, false)
    }
}

/// The bounds and escapes of `quotedForMessage`.
public enum QuotedTextLimit {
    /// Scalars of input text an error message shows.
    public static let scalars = 80

    /// C0 and C1 controls, DEL, line and paragraph separators, bidirectional controls.
    static func isHidden(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0..<0x20, 0x7f...0x9f, 0x2028, 0x2029, 0x200e, 0x200f, 0x202a...0x202e, 0x2066...0x2069: true
        default: false
        }
    }

    static func append(_ scalar: Unicode.Scalar, to out: inout String) {
        switch scalar {
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case _ where isHidden(scalar): out += "\\u{" + String(scalar.value, radix: 16) + "}"
        default: out.unicodeScalars.append(scalar)
        }
    }
}
