import Glibc
@testable import VMMKit

/// The C plugins and fixtures built by scripts/build-plugins, and the Swift plugin
/// built by SwiftPM; the tests build the C side themselves once per run, so `swift test`
/// works without running the script first.
enum PluginFixtures {
    static let root = PluginSearchPath.packageRoot!
    static let plugins = root + "/.build/plugins"
    static let fixtures = plugins + "/fixtures"

    static func fixture(_ name: String) -> String { "\(fixtures)/lib\(name).so" }

    /// Runs scripts/build-plugins once per process (cheap: a few cc runs).
    static let built: Bool = {
        var pid = pid_t()
        let script = root + "/scripts/build-plugins"
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup(script), nil]
        defer { argv.forEach { free($0) } }
        guard posix_spawn(&pid, script, nil, nil, argv, environ) == 0 else { return false }
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        return status == 0
    }()

    /// A test guest with a plugin host on its dispatcher.
    static func guest(_ payload: String) throws -> (TestGuest, PluginHost) {
        precondition(built, "scripts/build-plugins failed")
        let guest = try TestGuest(payload)
        return (guest, PluginHost(vm: guest.vm, dispatcher: guest.dispatcher))
    }
}

/// The error a throwing call raised, for checking its message.
func pluginError(_ body: () throws(PluginError) -> Void) -> PluginError? {
    do { try body() } catch { return error }
    return nil
}
