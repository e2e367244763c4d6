import CVMMCommandLine
import Glibc

/// A command line as libVMMCommandLine.so (ArgumentParser) parsed it: the subcommand and
/// its items in order (vmm_command_line.h). The library is loaded from beside the `vmm`
/// executable, only for command lines `RunFlags.fastParse` does not take.
struct ParsedCommand {
    var name: String
    var items: [(key: String, value: String?)] = []

    /// The value of an option that takes one, nil when absent; given twice, refused
    /// (the library emits every occurrence, ArgumentParser would keep the last).
    func string(_ key: String) throws(LauncherError) -> String? {
        let given = items.filter { $0.key == key }
        if given.count > 1 { throw Self.repeated(key, given[0].value ?? "", given[1].value ?? "") }
        return given.first?.value ?? nil
    }
    func strings(_ key: String) -> [String] { items.filter { $0.key == key }.compactMap(\.value) }
    func flag(_ key: String) -> Bool { items.contains { $0.key == key } }

    /// A single-valued option given again: which value would have won is the user's
    /// mistake to see, not the launcher's to pick (status 2).
    static func repeated(_ key: String, _ first: String, _ second: String) -> LauncherError {
        LauncherError(.usage, "--\(key) given more than once (\(first.quotedForMessage), then \(second.quotedForMessage)); it takes one value")
    }

    /// An item this launcher does not know: the library is from another build.
    static func skew(_ what: String) -> LauncherError {
        LauncherError(.usage, "\(libraryName) returned '\(what)', which this vmm does not know (a library from another build?)")
    }

    static let libraryName = "libVMMCommandLine.so"
    /// Scalars of ArgumentParser's error message shown (its own words are far fewer).
    static let errorScalars = 300

    /// Parses `args` (after the program name). Help and completion scripts are printed by
    /// the library and end the process, unless `exitOnOutput` is false (then they throw);
    /// a usage error is thrown, for `VMM.main` to print as one line.
    static func parse(_ args: [String], exitOnOutput: Bool = true) throws(LauncherError) -> ParsedCommand {
        let file = ExecutableDirectory.path(of: libraryName)
        guard let library = dlopen(file, RTLD_NOW | RTLD_LOCAL) else {
            throw LauncherError(.usage, "cannot read these arguments without \(file): \(String(cString: dlerror()))"
                + " (built with the package: swift build, or swift build --product VMMCommandLine); plain 'vmm run IMAGE --flag value' works without it")
        }
        // Stays loaded: the process exits after the command, and ArgumentParser's
        // metadata must outlive any use.
        guard let symbol = dlsym(library, VMM_COMMAND_LINE_PARSE) else {
            throw LauncherError(.usage, "\(file) lacks \(VMM_COMMAND_LINE_PARSE)")
        }
        let parse = unsafeBitCast(symbol, to: vmm_command_line_parse_fn.self)
        let collector = Collector()
        let ctlHelp = CtlStatus.allCases.map { "\($0.rawValue) \($0.meaning)" }.joined(separator: "; ")
        let status = withCStrings(args) { argv in
            parse(VMM_COMMAND_LINE_VERSION, Int32(args.count), argv, VMM.statusHelp, ctlHelp, LauncherStatus.usage.rawValue,
                  Unmanaged.passUnretained(collector).toOpaque()) { context, key, value in
                guard let context, let key else { return }
                let c = Unmanaged<Collector>.fromOpaque(context).takeUnretainedValue()
                c.items.append((String(cString: key), value.map { String(cString: $0) }))
            }
        }
        guard status < 0 else {
            if status != 0, let error = collector.items.first(where: { $0.key == "error" }) {
                // ArgumentParser's message repeats argument bytes as given: printed as one
                // line (VMM.main) and bounded here, like every message naming input.
                throw LauncherError(.usage, "Error: " + (error.value ?? "").asOneLine(limit: Self.errorScalars))
            }
            if exitOnOutput { Glibc.exit(status) }
            throw LauncherError(.usage, "not parsed (status \(status))")
        }
        guard let first = collector.items.first, first.key == "command", let name = first.value else {
            throw skew(collector.items.first?.key ?? "nothing")
        }
        return ParsedCommand(name: name, items: Array(collector.items.dropFirst()))
    }

    private final class Collector {
        var items: [(key: String, value: String?)] = []
    }

    /// Runs the command; every one ends the process or throws.
    func run() throws(LauncherError) -> Never {
        switch name {
        case "run": try RunFlags(self).launch()
        case "restore": SignalStop.exit(try Launcher.restore(try RestoreRequest(self)))
        case "plugins": try PluginsCommand(self).run()
        case "ctl": try CtlCommand(self).run()
        default: throw Self.skew("command=\(name)")
        }
    }
}

/// `body` with `strings` as a C `argv` (NUL-terminated copies, freed after).
private func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
    let copies = strings.map { strdup($0) }
    defer { copies.forEach { free($0) } }
    let pointers = copies.map { UnsafePointer($0) } + [nil]
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}

/// Files installed beside the running `vmm` (SwiftPM puts the products of one build
/// configuration side by side): its command-line and API-server libraries.
enum ExecutableDirectory {
    static func path(of file: String) -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return file }
        let exe = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let slash = exe.utf8.lastIndex(of: UInt8(ascii: "/")) else { return file }
        return String(exe[..<slash]) + "/" + file
    }
}
