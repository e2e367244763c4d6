import Foundation
import Testing

/// Plugin log lines under `vmm run`: the launcher's logger, the plugin's level, `--log-level`.
@Suite("vmm launcher: plugin log levels", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct LauncherPluginLogTests {
    /// DebugExit logs where it listens at VMM_LOG_DEBUG from its init.
    static let debugLine = "debug vmm: [org.vmmkit.debug-exit] debug-exit on port 0xf4\n"

    @Test("a plugin's debug line is shown with --log-level debug (and trace), labelled with its id")
    func shownAtDebug() throws {
        for level in ["debug", "trace"] {
            let r = try VMMProcess.run(["run", VMMProcess.guest("hello64.elf"), "--log-level", level])
            #expect(r.status == 1)
            #expect(r.stdout == "Hello from an ELF64 guest\n")
            let lines = r.stderr.split(separator: "\n", omittingEmptySubsequences: false).map { $0 + "\n" }
            #expect(lines.contains { $0.hasSuffix(Self.debugLine) }, "--log-level \(level): \(r.stderr)")
        }
    }

    @Test("not with the default level; --log-level info shows the plugin's info line but not its debug line")
    func hiddenByDefault() throws {
        let quiet = try VMMProcess.run(["run", VMMProcess.guest("hello64.elf")])
        #expect(quiet.status == 1)
        #expect(quiet.stderr == "")
        let info = try VMMProcess.run(["run", VMMProcess.guest("hello64.elf"), "--log-level", "info"])
        #expect(info.status == 1)
        #expect(info.stderr.contains("info vmm: [Launcher] loaded default plugin org.vmmkit.debug-exit"))
        #expect(info.stderr.contains("info vmm: [org.vmmkit.debug-exit] stop requested (code 0)\n"))
        #expect(!info.stderr.contains("debug-exit on port"))
    }
}
