import Logging
import VMMKit

/// Plugin log lines (`vmm_host_t.log`) into the launcher's own swift-log logger: the
/// plugin's level mapped onto swift-log's, filtered by the logger's `--log-level`, the
/// plugin id as the line's source (`... debug vmm: [org.vmmkit.debug-exit] ...`).
enum PluginLog {
    static func level(_ level: PluginLogLevel) -> Logger.Level {
        switch level {
        case .error: .error
        case .warn: .warning
        case .info: .info
        case .debug: .debug
        case .trace: .trace
        }
    }

    /// A `PluginHost.stopHandler`: a plugin's stop and its reason, shown whatever the
    /// `--log-level` (a run that ends on a plugin's word says whose and why), as the
    /// launcher's other `vmm: ...` lines.
    static let stop: @Sendable (PluginStopRequest) -> Void = { ExitStats.err("vmm: \($0)\n") }

    /// A `PluginHost.logHandler` writing to `logger`; called from any thread.
    static func handler(_ logger: Logger) -> @Sendable (PluginLogLevel, String, String) -> Void {
        { level, plugin, message in
            // One line whatever the plugin's text holds (it may repeat what a guest wrote).
            logger.log(level: Self.level(level), "\(message.asOneLine)", source: plugin)
        }
    }
}
