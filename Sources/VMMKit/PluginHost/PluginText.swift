import Glibc

/// Text a plugin hands the host: an id or description at load, a handler's name, a
/// failure or init message, a log line, a stop reason, a hypercall signature. Read up to
/// its NUL or `limit` bytes, whichever comes first (`vmm_plugin.h`, "Strings"), so a
/// plugin that passes megabytes, or a buffer with no NUL, costs the host at most that.
enum PluginText {
    static let limit = 4096

    static func read(_ text: UnsafePointer<CChar>) -> String {
        let count = strnlen(text, limit)
        let read = String(decoding: UnsafeRawBufferPointer(start: text, count: count), as: UTF8.self)
        return count < limit ? read : read + "… (cut at \(limit) bytes)"
    }

    /// A plugin's failure status, documented as a negative errno: "No space left on
    /// device (-28)". Any other value is shown as it is; -2^31 has no positive twin to
    /// negate (negating it trapped the host).
    static func status(_ rc: Int32) -> String {
        guard rc < 0, rc != .min else { return "status \(rc)" }
        return "\(String(cString: strerror(-rc))) (\(rc))"
    }

    /// A failure or init message a plugin may leave NULL.
    static func message(_ text: UnsafePointer<CChar>?) -> String { text.map(read) ?? "(no message)" }
}
