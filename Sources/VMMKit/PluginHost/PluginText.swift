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

    /// A failure or init message a plugin may leave NULL.
    static func message(_ text: UnsafePointer<CChar>?) -> String { text.map(read) ?? "(no message)" }
}
