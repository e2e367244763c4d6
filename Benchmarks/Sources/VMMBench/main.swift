import Glibc

// Usage: vmm-bench [section...]   (sections: runloop, plugins, userpath, scaling, startup, asyncpf, uart; default: all)
// VMM_BENCH_EXITS / VMM_BENCH_ROUNDS / VMM_BENCH_SYNTHETIC override the sizes (scaling: at least
// 31 rounds); VMM_SCALING_PATH=real or user runs one path of `scaling`.
let args = Array(CommandLine.arguments.dropFirst())
func wants(_ section: String) -> Bool { args.isEmpty || args.contains(section) }
let exits = getenv("VMM_BENCH_EXITS").flatMap { Int(String(cString: $0)) } ?? 200_000
let rounds = getenv("VMM_BENCH_ROUNDS").flatMap { Int(String(cString: $0)) } ?? 3

do {
    if wants("runloop") { try RunLoopBench.run(exits: exits, rounds: rounds) }
    if wants("plugins") { try PluginBench.run(exits: exits, rounds: rounds) }
    if wants("userpath") {
        let n = getenv("VMM_BENCH_SYNTHETIC").flatMap { Int(String(cString: $0)) } ?? 2_000_000
        try UserPathBench.run(exits: n, rounds: rounds)
    }
    if wants("scaling") {
        // Many short runs (tens of ms), paired: see ScalingBench.
        let n = getenv("VMM_BENCH_SYNTHETIC").flatMap { Int(String(cString: $0)) } ?? 2_000_000
        try ScalingBench.run(exits: min(exits, 5_000), synthetic: n, rounds: max(rounds, 31))
    }
    if wants("startup") { try StartupBench.run(runs: getenv("VMM_BENCH_STARTUP_RUNS").flatMap { Int(String(cString: $0)) } ?? 20) }
    if wants("asyncpf") { try AsyncPFBench.run(rounds: rounds) }
    if wants("uart") { try UARTBench.run() }
} catch {
    print("vmm-bench: \(error)")
    exit(1)
}
