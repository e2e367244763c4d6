/// `vmm run IMAGE --flag value ...` without ArgumentParser. Its parse of `run` costs about
/// half the instructions of a trivial guest's whole process (reflection over `Run`'s
/// options, and two throwaway commands it parses to look for a completion-script request),
/// which start-up (issue 13) cannot afford. This parser accepts only the plain forms and
/// returns nil for anything else (help, `--`, unknown or repeated options, a value that
/// begins with `-`, a number that does not convert or is not finite), and `VMM.main`
/// then lets ArgumentParser parse, report and explain as before. So help, usage and errors
/// come from one place, and for what this accepts both give the same `RunFlags`: debug
/// builds check that on every run, and `LauncherParseTests` checks it on generated input.
extension RunFlags {
    /// Where each flag's value goes. (Key paths are immutable values, but not yet
    /// declared Sendable.)
    private enum Field: @unchecked Sendable {
        case flag(WritableKeyPath<RunFlags, Bool>)
        case string(WritableKeyPath<RunFlags, String?>)
        case int(WritableKeyPath<RunFlags, Int?>)
        case double(WritableKeyPath<RunFlags, Double?>)
        case plugin
    }

    private static let fields: [String: Field] = [
        "memory": .string(\.memory), "vcpus": .int(\.vcpus), "read-ahead": .int(\.readAhead),
        "irqchip": .string(\.irqchip), "plugin": .plugin, "no-default-plugins": .flag(\.noDefaultPlugins),
        "config": .string(\.config), "serial": .string(\.serial), "trace": .string(\.trace), "stats": .flag(\.stats),
        "strict-io": .flag(\.strictIO), "max-seconds": .double(\.maxSeconds), "append": .string(\.append),
        "initrd": .string(\.initrd), "load-addr": .string(\.loadAddr), "entry": .string(\.entry), "mode": .int(\.mode),
        "handler-budget": .double(\.handlerBudget), "no-seccomp": .flag(\.noSeccomp), "log-level": .string(\.logLevel),
        "snapshot-on-stop": .string(\.snapshotOnStop), "api-sock": .string(\.apiSock),
    ]

    /// `args` as after the program name: `["run", ...]`.
    static func fastParse(_ args: [String]) -> RunFlags? {
        guard args.first == "run" else { return nil }
        var f = RunFlags()
        var seen: Set<String> = []
        var i = 1
        while i < args.count {
            let arg = args[i]
            i += 1
            guard arg.hasPrefix("-") else {
                // The one positional, IMAGE.
                guard f.image == nil, !arg.isEmpty, arg != "help" else { return nil }
                f.image = arg
                continue
            }
            guard arg.hasPrefix("--") else { return nil }
            var name = arg.dropFirst(2)
            var value: String?
            if let eq = name.firstIndex(of: "=") {
                value = String(name[name.index(after: eq)...])
                name = name[..<eq]
            }
            let key = String(name)
            guard let field = fields[key] else { return nil }
            if case .plugin = field {} else { guard seen.insert(key).inserted else { return nil } }
            if case let .flag(path) = field {
                guard value == nil else { return nil }
                f[keyPath: path] = true
                continue
            }
            if value == nil {
                guard i < args.count else { return nil }
                value = args[i]
                i += 1
            }
            guard let v = value, !v.isEmpty, !v.hasPrefix("-") else { return nil }
            switch field {
            case let .string(path): f[keyPath: path] = v
            case let .int(path):
                guard let n = Int(v) else { return nil }
                f[keyPath: path] = n
            case let .double(path):
                guard let d = Double(v), d.isFinite else { return nil }
                f[keyPath: path] = d
            case .plugin: f.plugins.append(v)
            case .flag: return nil
            }
        }
        return f
    }
}
