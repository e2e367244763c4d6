/// Why a plugin was refused or failed: always names the plugin (its path, and its id
/// once known) and what was wrong, so the message alone says what to fix.
public struct PluginError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The path (or the name that was looked up) of the plugin.
    public let plugin: String
    public let message: String

    public init(plugin: String, _ message: String) {
        self.plugin = plugin
        self.message = message
    }

    public var description: String { "plugin \(plugin): \(message)" }
}
