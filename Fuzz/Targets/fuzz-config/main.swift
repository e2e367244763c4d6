import FuzzDriver
// The launcher's JSON config parser (Examples/Launcher/LaunchOptions.swift, linked
// here as source): any bytes give options or a LauncherError, never a trap.
runFuzzer { data, size in
    let bytes = Array(fuzzInput(data, size))
    do {
        let o = try LaunchOptions.parse(bytes, path: "fuzz.json")
        // What the launcher relies on after parsing.
        precondition((1...64).contains(o.vcpus) && o.memory > 0)
        if let s = o.maxSeconds { precondition(LaunchOptions.validSeconds(s)) }
    } catch let error as LauncherError {
        precondition(error.status == .config && error.message.hasPrefix("fuzz.json: "))
        requireOneLine(error.message)
    } catch {
        preconditionFailure("not a LauncherError: \(error)")
    }
    return 0
}
