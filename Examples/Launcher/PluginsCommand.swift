import Glibc
import VMMKit

/// `vmm plugins [--probe] [PATH]`: what plugins can be found, what they are, which file
/// `--plugin NAME` loads, and why any candidate was refused. Each descriptor is read
/// from the file, as data: listing runs no plugin code. `--probe` also lists handlers,
/// by running each candidate's `init` in a child process (`PluginProbe`). Parsed by
/// libVMMCommandLine.so (its `PluginsArguments` holds the help).
struct PluginsCommand {
    var probe = false
    var probeTimeout: Double?
    var probeChild: String?
    var path: String?
    /// The longest `--probe-timeout`: an hour.
    static let maxProbeSeconds = 3600.0

    init(_ p: ParsedCommand) throws(LauncherError) {
        probe = p.flag("probe")
        probeTimeout = try p.string("probe-timeout").map { text throws(LauncherError) in
            try FlagValues.seconds(flag: "probe-timeout", text, max: Self.maxProbeSeconds)
        }
        probeChild = try p.string("probe-child")
        path = try p.string("path")
    }

    func run() throws(LauncherError) -> Never {
        if let probeChild { PluginProbe.child(probeChild); Glibc.exit(0) }
        let timeout = probeTimeout ?? PluginProbe.defaultSeconds
        let (candidates, named) = try Self.candidates(path)
        if candidates.isEmpty { print("no plugins found in \(path ?? PluginSearchPath.standard().directories.joined(separator: ", "))") }
        var refused = false
        for file in candidates {
            let (lines, ok) = Self.describe(file, probe: probe ? timeout : nil)
            // Each line one line: a file's version, description and handler names, its
            // name in the directory and a refusal's reason are the file's text.
            print(lines.map(\.asOneLine).joined(separator: "\n"))
            refused = refused || !ok
        }
        Glibc.exit(named && refused ? LauncherStatus.plugin.rawValue : 0)
    }

    /// The files to list, and whether PATH named one file.
    static func candidates(_ path: String?) throws(LauncherError) -> ([String], Bool) {
        var st = stat()
        if let path {
            guard stat(path, &st) == 0 else { throw LauncherError(.usage, "\(path): \(String(cString: strerror(errno)))") }
            if st.st_mode & S_IFMT != S_IFDIR { return ([path], true) }
            return (sharedObjects(in: path), false)
        }
        var seen: Set<String> = []
        return (PluginSearchPath.standard().directories.flatMap(sharedObjects).filter { seen.insert($0).inserted }, false)
    }

    static func sharedObjects(in dir: String) -> [String] {
        guard let d = opendir(dir) else { return [] }
        defer { closedir(d) }
        var names: [String] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name.hasSuffix(".so") { names.append(dir.hasSuffix("/") ? dir + name : dir + "/" + name) }
        }
        return names.sorted()
    }

    /// The listing of one file's lines, and whether it was accepted.
    static func describe(_ file: String, probe timeout: Double?) -> ([String], Bool) {
        let d: PluginDescriptor
        do { d = try PluginDescriptor.read(file) } catch { return (["refused  \(file): \(error)"], false) }
        var lines = ["\(d.id) \(d.version) (ABI \(d.abiVersion))  \(file)\(mark(file))", "    \(d.summary)"]
        guard let timeout else { return (lines, true) }
        switch PluginProbe.run(file, seconds: timeout) {
        case let .handlers(handlers):
            lines += handlers.isEmpty ? ["    handlers: none with an empty config"] : handlers.map { "    handler: \($0)" }
        case let .initFailed(why):
            lines.append("    handlers: unknown (init with an empty config: \(why))")
        case let .refused(why):
            return (["refused  \(file): plugin '\(d.id)' (\(file)): \(why)"], false)
        }
        return (lines, true)
    }

    /// Which `--plugin NAME` loads `file`, or which file that name loads instead.
    static func mark(_ file: String) -> String {
        var name = String(file.split(separator: "/").last ?? "")
        guard name.hasSuffix(".so") else { return "" }
        name.removeLast(3)
        if name.hasPrefix("lib") && name.count > 3 { name.removeFirst(3) }
        guard let resolved = try? PluginSearchPath.standard().resolve(name) else { return "" }
        if canonical(resolved) == canonical(file) { return "  [--plugin \(name)]" }
        return "  [--plugin \(name) loads \(resolved)]"
    }

    static func canonical(_ path: String) -> String {
        guard let real = realpath(path, nil) else { return path }
        defer { free(real) }
        return String(cString: real)
    }
}
