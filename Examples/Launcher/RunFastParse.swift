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
    private enum Kind { case flag, string, int, double, plugin }

    private static let names: [String: Kind] = [
        "memory": .string, "vcpus": .int, "read-ahead": .int, "irqchip": .string, "plugin": .plugin,
        "no-default-plugins": .flag, "config": .string, "serial": .string, "trace": .string, "stats": .flag,
        "strict-io": .flag, "max-seconds": .double, "append": .string, "initrd": .string, "load-addr": .string,
        "entry": .string, "mode": .int, "handler-budget": .double, "no-seccomp": .flag, "log-level": .string,
        "snapshot-on-stop": .string, "api-sock": .string,
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
            guard let kind = names[key] else { return nil }
            guard kind == .plugin || seen.insert(key).inserted else { return nil }
            if kind == .flag {
                guard value == nil else { return nil }
                f.setFlag(key)
                continue
            }
            if value == nil {
                guard i < args.count else { return nil }
                value = args[i]
                i += 1
            }
            guard let v = value, !v.isEmpty, !v.hasPrefix("-") else { return nil }
            switch kind {
            case .int:
                guard let n = Int(v) else { return nil }
                f.setInt(key, n)
            case .double:
                guard let d = Double(v), d.isFinite else { return nil }
                if key == "max-seconds" { f.maxSeconds = d } else { f.handlerBudget = d }
            case .plugin: f.plugins.append(v)
            default: f.setString(key, v)
            }
        }
        return f
    }

    private mutating func setFlag(_ key: String) {
        switch key {
        case "no-default-plugins": noDefaultPlugins = true
        case "stats": stats = true
        case "strict-io": strictIO = true
        default: noSeccomp = true
        }
    }

    private mutating func setInt(_ key: String, _ n: Int) {
        switch key {
        case "vcpus": vcpus = n
        case "read-ahead": readAhead = n
        default: mode = n
        }
    }

    private mutating func setString(_ key: String, _ v: String) {
        switch key {
        case "memory": memory = v
        case "irqchip": irqchip = v
        case "config": config = v
        case "serial": serial = v
        case "trace": trace = v
        case "append": append = v
        case "initrd": initrd = v
        case "load-addr": loadAddr = v
        case "entry": entry = v
        case "log-level": logLevel = v
        case "snapshot-on-stop": snapshotOnStop = v
        default: apiSock = v
        }
    }
}
