import Foundation
import Testing

/// `vmm plugins`: descriptors as data, `--probe` in a child, statuses, which file a name loads.
@Suite("vmm plugins")
struct PluginListingTests {
    static let plugins = VMMProcess.root.appendingPathComponent(".build/plugins").path
    static let fixtures = plugins + "/fixtures"
    static let hostile = fixtures + "/hostile"

    /// `bound`: seconds after which coreutils' `timeout` kills `vmm` and what it started
    /// (its process group), for a run that would otherwise hang the suite (status 137).
    static func run(_ args: [String], environment: [String: String] = [:], bound: Int? = nil) throws -> VMMProcess.Result {
        let p = Process()
        if let bound {
            p.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
            p.arguments = ["-s", "KILL", String(bound), VMMProcess.binary] + args
        } else {
            p.executableURL = URL(fileURLWithPath: VMMProcess.binary)
            p.arguments = args
        }
        p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return .init(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
    }

    @Test("listing runs no plugin code: a constructor that ends the process and a crashing init are listed as data")
    func listingRunsNothing() throws {
        let r = try Self.run(["plugins", Self.hostile])
        #expect(r.status == 0)
        #expect(r.stdout == """
            org.vmmkit.test.hostile 6.6.6 (ABI 1.2)  \(Self.hostile)/libCTOR_EXITS.so
                runs hostile code when loaded
            org.vmmkit.test.hostile 6.6.6 (ABI 1.2)  \(Self.hostile)/libINIT_CRASHES.so
                runs hostile code when loaded
            org.vmmkit.test.hostile 6.6.6 (ABI 1.2)  \(Self.hostile)/libINIT_FORKS.so
                runs hostile code when loaded
            org.vmmkit.test.hostile 6.6.6 (ABI 1.2)  \(Self.hostile)/libINIT_HANGS.so
                runs hostile code when loaded
            org.vmmkit.test.hostile 6.6.6 (ABI 1.2)  \(Self.hostile)/libINIT_HIDES.so
                runs hostile code when loaded

            """)
    }

    @Test("a description holding a newline and escape sequences is listed on one line, escaped")
    func hostileText() throws {
        // libNull.so with its description's bytes changed in the file: "a port\nFAKE\e[2J..."
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: Self.fixtures + "/libNull.so")))
        let old = Array("a port that reads 0".utf8), new = Array("a port\nFAKE\u{1b}[2J\u{1b}]0;".utf8)
        try #require(old.count == new.count)
        let at = try #require((0...(bytes.count - old.count)).first { Array(bytes[$0..<$0 + old.count]) == old })
        bytes.replaceSubrange(at..<at + old.count, with: new)
        let file = try VMMProcess.temp("libHostileText.so", bytes)
        let r = try Self.run(["plugins", file])
        #expect(r.status == 0)
        #expect(r.stdout == "org.vmmkit.bench.null 1.0.0 (ABI 1.2)  \(file)\n"
            + #"    a port\nFAKE\u{1b}[2J\u{1b}]0; and counts writes (benchmarks)"# + "\n", "\(r.stdout.debugDescription)")
    }

    @Test("a named file that is refused exits 8; a directory holding refused files exits 0")
    func statuses() throws {
        let major = try Self.run(["plugins", "\(Self.fixtures)/libMAJOR2.so"])
        #expect(major.status == 8)
        #expect(major.stdout == "refused  \(Self.fixtures)/libMAJOR2.so: plugin \(Self.fixtures)/libMAJOR2.so: built for plugin ABI 2.0, "
            + "but this host implements ABI 1.2: a different major version is incompatible; rebuild the plugin against this host's vmm_plugin.h\n")
        let junk = try Self.run(["plugins", "\(Self.fixtures)/not_a_library.so"])
        #expect(junk.status == 8)
        #expect(junk.stdout == "refused  \(Self.fixtures)/not_a_library.so: plugin \(Self.fixtures)/not_a_library.so: "
            + "not a loadable shared library: not an ELF file (29 bytes)\n")
        let good = try Self.run(["plugins", "\(Self.fixtures)/libNull.so"])
        #expect(good.status == 0)
        let dir = try Self.run(["plugins", Self.fixtures])
        #expect(dir.status == 0)
        #expect(dir.stdout.contains("refused  \(Self.fixtures)/libNO_ENTRY.so: "))
        #expect(!dir.stdout.contains("handler"))
    }

    @Test("each listed file says which --plugin NAME loads it, or which file that name loads instead")
    func marks() throws {
        let listing = try Self.run(["plugins"])
        #expect(listing.stdout.contains("org.vmmkit.debug-exit 1.0.0 (ABI 1.2)  \(Self.plugins)/libDebugExit.so  [--plugin DebugExit]\n"))
        let dir = NSTemporaryDirectory() + "vmm-marks-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.copyItem(atPath: "\(Self.plugins)/libDebugExit.so", toPath: "\(dir)/libDebugExit.so")
        let shadowed = try Self.run(["plugins", dir])
        #expect(shadowed.stdout.hasPrefix("org.vmmkit.debug-exit 1.0.0 (ABI 1.2)  \(dir)/libDebugExit.so  "
            + "[--plugin DebugExit loads \(Self.plugins)/libDebugExit.so]\n"))
        // VMM_PLUGIN_PATH comes before the build folders: now the copy is the one loaded.
        let first = try Self.run(["plugins"], environment: ["VMM_PLUGIN_PATH": dir])
        #expect(first.stdout.contains("\(dir)/libDebugExit.so  [--plugin DebugExit]\n"))
        #expect(first.stdout.contains("\(Self.plugins)/libDebugExit.so  [--plugin DebugExit loads \(dir)/libDebugExit.so]\n"))
    }
}

@Suite("vmm plugins --probe on real KVM", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct PluginProbeTests {
    @Test("--probe lists handlers from init in a child; a crash, an exit or a hang there (also one after closing its output) refuses that candidate only")
    func probe() throws {
        let ok = try PluginListingTests.run(["plugins", "--probe", "\(PluginListingTests.plugins)/libDebugExit.so"])
        #expect(ok.status == 0)
        #expect(ok.stdout.hasSuffix("\n    handler: pio [0xf4..<0xf5] priority 0 exclusive\n"))
        let crash = "\(PluginListingTests.hostile)/libINIT_CRASHES.so"
        let crashed = try PluginListingTests.run(["plugins", "--probe", crash])
        #expect(crashed.status == 8)
        #expect(crashed.stdout == "refused  \(crash): plugin 'org.vmmkit.test.hostile' (\(crash)): "
            + "crashed while loading or initialising (signal 11, Segmentation fault)\n")
        // The hanging candidate costs the listing its --probe-timeout, the others nothing.
        let both = try PluginListingTests.run(["plugins", "--probe", "--probe-timeout", "3", PluginListingTests.hostile], bound: 120)
        #expect(both.status == 0)
        #expect(both.stdout.contains("libINIT_HANGS.so): init with an empty config did not return within 3.0 s"))
        #expect(both.stdout.contains("libINIT_HIDES.so): init with an empty config did not return within 3.0 s"))
        #expect(both.stdout.contains("libCTOR_EXITS.so): the probe exited with status 77 before reporting"))
        #expect(both.stdout.contains("libINIT_CRASHES.so): crashed while loading or initialising (signal 11"))
        let hang = "\(PluginListingTests.hostile)/libINIT_HANGS.so"
        let hung = try PluginListingTests.run(["plugins", "--probe", "--probe-timeout", "0.5", hang])
        #expect(hung.status == 8)
        #expect(hung.stdout == "refused  \(hang): plugin 'org.vmmkit.test.hostile' (\(hang)): "
            + "init with an empty config did not return within 0.5 s (probe killed; see --probe-timeout)\n")
        // A child that closes its output (the parent reads an end of file) and runs on:
        // the listing waited for it forever.
        let hides = "\(PluginListingTests.hostile)/libINIT_HIDES.so"
        let hid = try PluginListingTests.run(["plugins", "--probe", "--probe-timeout", "0.5", hides], bound: 120)
        #expect(hid.status == 8)
        #expect(hid.stdout == "refused  \(hides): plugin 'org.vmmkit.test.hostile' (\(hides)): "
            + "init with an empty config did not return within 0.5 s (probe killed; see --probe-timeout)\n")
        // A candidate whose init starts a process in a session of its own, holding the
        // probe's output, and returns: it was refused as "did not return", and that
        // process outlived the listing.
        let forks = "\(PluginListingTests.hostile)/libINIT_FORKS.so"
        let pidFile = NSTemporaryDirectory() + "vmm-probe-grandchild-\(getpid())"
        try? FileManager.default.removeItem(atPath: pidFile)
        let forked = try PluginListingTests.run(["plugins", "--probe", "--probe-timeout", "5", forks],
                                                environment: ["VMM_TEST_GRANDCHILD_PIDFILE": pidFile], bound: 120)
        #expect(forked.status == 0)
        #expect(forked.stdout.hasSuffix("libINIT_FORKS.so\n    runs hostile code when loaded\n    handlers: none with an empty config\n"), "\(forked.stdout)")
        let grandchild = try #require(pid_t((try String(contentsOfFile: pidFile, encoding: .utf8)).trimmingCharacters(in: .whitespacesAndNewlines)))
        let alive = kill(grandchild, 0) == 0
        if alive { kill(grandchild, SIGKILL) }
        #expect(!alive, "the candidate's process \(grandchild) outlived the listing")
        let badTimeout = try PluginListingTests.run(["plugins", "--probe", "--probe-timeout", "0", hang])
        #expect(badTimeout.status == 2)
        #expect(badTimeout.stderr == "vmm: --probe-timeout must be a number of seconds from 0.000001 to 3600, not 0\n")
        let needsConfig = try PluginListingTests.run(["plugins", "--probe", "\(PluginListingTests.fixtures)/libINIT_FAILS.so"])
        #expect(needsConfig.status == 0)
        #expect(needsConfig.stdout.contains("    handlers: unknown (init with an empty config: "))
    }
}
