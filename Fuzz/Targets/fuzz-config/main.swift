import FuzzDriver
// The launcher's JSON config parser (Examples/Launcher/LaunchOptions.swift, linked
// here as source, with FwCfgFile.swift for `fwCfg`): any bytes give options or a
// LauncherError, never a trap.
runFuzzer { data, size in
    let bytes = Array(fuzzInput(data, size))
    do {
        let o = try LaunchOptions.parse(bytes, path: "fuzz.json")
        // What the launcher relies on after parsing.
        // (The memory's range, 2M to 1027G in whole pages, is Launcher.run's to check: a
        // flag may override the file's.)
        precondition((1...LaunchOptions.maxVCPUs).contains(o.vcpus))
        if let s = o.maxSeconds { precondition(LaunchOptions.validSeconds(s)) }
        // fw_cfg files: names a directory holds, each once, no more than it takes.
        precondition((try? FwCfgFile.check(names: o.fwCfg.map(\.name), sizes: [])) != nil)
        for spec in o.fwCfg { precondition((try? FwCfgFile.check(name: spec.name)) != nil, "fw_cfg name \(spec.name)") }
    } catch let error as LauncherError {
        precondition(error.status == .config && error.message.hasPrefix("fuzz.json: "))
        requireOneLine(error.message)
    } catch {
        preconditionFailure("not a LauncherError: \(error)")
    }
    return 0
}
