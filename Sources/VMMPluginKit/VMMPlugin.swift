import CVMMPlugin

/// A plugin written in Swift: a class conforming to `VMMPlugin`, plus one exported
/// entry (see `PluginEntry` and Plugins/README.md).
///
/// Only C types cross the boundary; the SDK turns thrown Swift errors into the ABI's
/// failure answers (init refused with the message, handler verdict FAIL with the
/// message) and never lets a Swift error unwind into the host.
public protocol VMMPlugin: AnyObject {
    /// [load-thread] Creates the instance and registers handlers through `host`.
    /// Throwing refuses the load; the error's description becomes the message.
    init(host: PluginServices, config: PluginConfig) throws

    /// [load-thread] Called once before the instance is released, after the VM stopped.
    func shutdown()

    /// [load-thread] A table this plugin offers under a versioned extension id (valid
    /// until `shutdown`), or nil. Reached through the entry's get_extension, which the C
    /// entry must name (see `PluginEntry.pluginExtension`).
    func pluginExtension(_ id: String) -> UnsafeRawPointer?
}

extension VMMPlugin {
    public func shutdown() {}
    public func pluginExtension(_ id: String) -> UnsafeRawPointer? { nil }
}

/// A handler's answer.
public enum PluginVerdict: Sendable {
    /// Done: the host completes the exit (IN/read data go to the guest) and resumes it.
    case handled
    /// Not this handler's: the host tries the next one.
    case notMine
    /// Stop the vCPU; the host reports the message with the plugin's id and path.
    case fail(String)
    /// (ABI 1.2, memory faults only) The handler replaced the memory behind the faulting
    /// range: the only answer that resumes a vCPU after EHWPOISON (VMM_BACKING_REPLACED).
    case backingReplaced
}

/// A plugin-side error with a message (any `Error` works; this one reads well).
public struct VMMPluginError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ message: String) { description = message }
}

/// The plugin's configuration string, `key=value,key=value` by convention.
public struct PluginConfig: Sendable {
    public let text: String
    public let pairs: [(key: String, value: String)]

    public init(_ text: String) throws {
        self.text = text
        var pairs: [(String, String)] = []
        for item in text.split(separator: ",") where !item.isEmpty {
            guard let eq = item.firstIndex(of: "=") else {
                throw VMMPluginError("config item '\(item)' is not key=value")
            }
            pairs.append((String(item[..<eq]), String(item[item.index(after: eq)...])))
        }
        self.pairs = pairs
    }

    public subscript(key: String) -> String? { pairs.last { $0.key == key }?.value }

    /// Refuses keys outside `known`, naming the first one, and a key given twice: the
    /// subscript reads the last, so "port=0x540,port=0x550" took 0x550 in silence (the
    /// bundled C plugins and the UART refuse it too).
    public func allowOnly(_ known: [String], plugin: String) throws {
        if let bad = pairs.first(where: { !known.contains($0.key) }) {
            throw VMMPluginError("\(plugin): unknown key '\(bad.key)' (known keys: \(known.joined(separator: ", ")))")
        }
        for (i, pair) in pairs.enumerated() where pairs[..<i].contains(where: { $0.key == pair.key }) {
            throw VMMPluginError("\(plugin): key '\(pair.key)' given twice")
        }
    }

    /// An integer value (decimal digits, or 0x and hex digits), `fallback` when absent.
    /// No sign: `UInt64(_:radix:)` alone would read "0x+10" as 16 and "+5" as 5.
    public func integer(_ key: String, default fallback: UInt64, plugin: String) throws -> UInt64 {
        guard let text = self[key] else { return fallback }
        let hex = text.hasPrefix("0x")
        let digits = hex ? text.utf8.dropFirst(2) : text.utf8.dropFirst(0)
        let plain = !digits.isEmpty && digits.allSatisfy { c in
            (0x30...0x39).contains(c) || hex && ((0x41...0x46).contains(c) || (0x61...0x66).contains(c))
        }
        let parsed = !plain ? nil : hex ? UInt64(text.dropFirst(2), radix: 16) : UInt64(text, radix: 10)
        guard let parsed else { throw VMMPluginError("\(plugin): bad value '\(text)' for key '\(key)' (an integer)") }
        return parsed
    }

    /// An I/O port (0...0xffff) with room for `count` ports from it, `fallback` when
    /// absent: a value that does not fit is an error naming the key, never a trap.
    public func port(_ key: String, default fallback: UInt16, count: Int = 1, plugin: String) throws -> UInt16 {
        let value = try integer(key, default: UInt64(fallback), plugin: plugin)
        guard count >= 1, count <= 0x10000, value <= UInt64(0x10000 - count) else {
            let span = count == 1 ? "a port (0 to 0xffff)" : "a first port with room for \(count) ports below 0x10000"
            throw VMMPluginError("\(plugin): bad value '\(self[key] ?? "")' for key '\(key)' (\(span))")
        }
        return UInt16(value)
    }
}
