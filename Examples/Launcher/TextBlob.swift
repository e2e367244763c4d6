/// The framing of the launcher's text blobs in a snapshot (`launcher`,
/// `launcher-devices`): a header line `NAME 1`, lines of their own, a last line `end`,
/// each line ending in a newline; UTF-8, at most a size of the blob's own.
enum TextBlob {
    static func encode(header: String, _ lines: [String]) -> [UInt8] {
        Array((([header] + lines + ["end"]).joined(separator: "\n") + "\n").utf8)
    }

    /// The lines between header and `end`, or the error `bad` makes of what is wrong.
    static func lines(_ bytes: [UInt8], header: String, version: UInt32, expected: UInt32, maxSize: Int,
                      _ bad: (String) -> LauncherError) throws(LauncherError) -> ArraySlice<String> {
        guard version == expected else { throw bad("version \(version); this vmm reads version \(expected)") }
        guard bytes.count <= maxSize, let text = String(validating: bytes, as: UTF8.self) else { throw bad("not UTF-8 text of at most \(maxSize) bytes") }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard lines.first == header, lines.count >= 3, lines.removeLast().isEmpty, lines.last == "end" else {
            throw bad("not a '\(header)' blob ending in 'end'")
        }
        return lines.dropFirst().dropLast()
    }
}
