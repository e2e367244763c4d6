/// `vmm run IMAGE --flag value ...` without ArgumentParser. Its parse of `run` costs about
/// half the instructions of a trivial guest's whole process (reflection over `Run`'s
/// options, and two throwaway commands it parses to look for a completion-script request),
/// which start-up (issue 13) cannot afford. This parser accepts only the plain forms and
/// returns nil for anything else (help, `--`, unknown or repeated options, a value that
/// begins with `-`), and `VMM.main` then lets ArgumentParser parse, report and explain
/// (libVMMCommandLine.so, loaded only then: ParsedCommand.swift). So help and usage come
/// from one place, and for what this accepts both give the same `RunFlags`: debug builds
/// check that on every run, and `LauncherParseTests` checks it on generated input. Values
/// (numbers too) are checked after either parser, in `resolve()`.
extension RunFlags {
    /// Where a flag's value goes. Closures in one switch, not a dictionary of key paths:
    /// building that table (24 key paths, a `[String: Field]`) and the `Set<String>` of
    /// seen flags cost ~1.07 million instructions at every start, 9 % of a trivial
    /// `vmm run` (callgrind), mostly the runtime's first conformance lookups
    /// (`String: Hashable`) and key-path instantiation. Each flag is still named once.
    private enum Field {
        case flag((inout RunFlags) -> Void)
        /// A value, numbers too: the launcher reads numbers from their text (`FlagValues`).
        case string((inout RunFlags, String) -> Void)
        /// Repeatable: each value appended (`--plugin`, `--fw-cfg`).
        case list((inout RunFlags, String) -> Void)
    }

    private static func field(_ name: String) -> Field? {
        switch name {
        case "memory": .string { $0.memory = $1 }
        case "vcpus": .string { $0.vcpus = $1 }
        case "read-ahead": .string { $0.readAhead = $1 }
        case "irqchip": .string { $0.irqchip = $1 }
        case "plugin": .list { $0.plugins.append($1) }
        case "fw-cfg": .list { $0.fwCfg.append($1) }
        case "no-default-plugins": .flag { $0.noDefaultPlugins = true }
        case "config": .string { $0.config = $1 }
        case "serial": .string { $0.serial = $1 }
        case "debugcon": .string { $0.debugcon = $1 }
        case "parallel": .string { $0.parallel = $1 }
        case "vga-text": .string { $0.vgaText = $1 }
        case "vga": .string { $0.vga = $1 }
        case "screendump": .string { $0.screendump = $1 }
        case "trace": .string { $0.trace = $1 }
        case "stats": .flag { $0.stats = true }
        case "strict-io": .flag { $0.strictIO = true }
        case "max-seconds": .string { $0.maxSeconds = $1 }
        case "append": .string { $0.append = $1 }
        case "initrd": .string { $0.initrd = $1 }
        case "hda": .string { $0.hda = $1 }
        case "hda-readonly": .flag { $0.hdaReadOnly = true }
        case "load-addr": .string { $0.loadAddr = $1 }
        case "entry": .string { $0.entry = $1 }
        case "mode": .string { $0.mode = $1 }
        case "handler-budget": .string { $0.handlerBudget = $1 }
        case "no-seccomp": .flag { $0.noSeccomp = true }
        case "no-hpet": .flag { $0.noHPET = true }
        case "pvpanic": .flag { $0.pvpanic = true }
        case "uuid": .string { $0.uuid = $1 }
        case "log-level": .string { $0.logLevel = $1 }
        case "snapshot-on-stop": .string { $0.snapshotOnStop = $1 }
        case "api-sock": .string { $0.apiSock = $1 }
        default: nil
        }
    }

    /// `args` as after the program name: `["run", ...]`.
    static func fastParse(_ args: [String]) -> RunFlags? {
        guard args.first == "run" else { return nil }
        var f = RunFlags()
        var seen: [String] = [] // a few names: an array needs no hashing
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
            guard let field = field(key) else { return nil }
            if case .list = field {} else {
                guard !seen.contains(key) else { return nil }
                seen.append(key)
            }
            if case let .flag(set) = field {
                guard value == nil else { return nil }
                set(&f)
                continue
            }
            if value == nil {
                guard i < args.count else { return nil }
                value = args[i]
                i += 1
            }
            guard let v = value, !v.isEmpty, !v.hasPrefix("-") else { return nil }
            switch field {
            case let .string(set): set(&f, v)
            case let .list(add): add(&f, v)
            case .flag: return nil
            }
        }
        return f
    }
}

extension RunFlags {
    /// What ArgumentParser (libVMMCommandLine.so) parsed for `run`; its items use the
    /// long option names the fast parser knows, so both fill `RunFlags` the same way.
    init(_ parsed: ParsedCommand) throws(LauncherError) {
        self.init()
        var given: [(key: String, value: String)] = [] // a few: an array needs no hashing
        for (key, value) in parsed.items {
            if key == "image" { image = value; continue }
            guard let field = Self.field(key) else { throw ParsedCommand.skew(key) }
            switch field {
            case let .flag(set): set(&self)
            case let .string(set):
                guard let value else { throw ParsedCommand.skew(key) }
                // Every occurrence reaches here (Commands.swift): a second is refused.
                if let first = given.first(where: { $0.key == key }) { throw ParsedCommand.repeated(key, first.value, value) }
                given.append((key, value))
                set(&self, value)
            case let .list(add):
                guard let value else { throw ParsedCommand.skew(key) }
                add(&self, value)
            }
        }
    }
}
