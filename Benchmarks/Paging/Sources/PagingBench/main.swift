import Glibc

// Usage: paging-bench [paging] [canary] [first-touch]   (default: all)
// PAGING_BENCH_PAGES / PAGING_BENCH_ROUNDS / CANARY_BENCH_ITERATIONS / FIRST_TOUCH_MIB
// override the sizes.
let args = Array(CommandLine.arguments.dropFirst())
func wants(_ section: String) -> Bool { args.isEmpty || args.contains(section) }
func env(_ name: String, _ fallback: Int) -> Int { getenv(name).flatMap { Int(String(cString: $0)) } ?? fallback }

do {
    if wants("canary") { CanaryBench.run(iterations: env("CANARY_BENCH_ITERATIONS", 20_000_000), rounds: env("PAGING_BENCH_ROUNDS", 5)) }
    if wants("paging") { try PagingBench.run(pages: env("PAGING_BENCH_PAGES", 8192), rounds: env("PAGING_BENCH_ROUNDS", 5)) }
    if wants("first-touch") { try FirstTouchBench.run(megabytes: env("FIRST_TOUCH_MIB", 64), rounds: env("PAGING_BENCH_ROUNDS", 5)) }
} catch {
    print("paging-bench: \(error)")
    exit(1)
}

/// Monotonic nanoseconds.
func now() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

/// `value` with `digits` decimals (no Foundation).
func fmt(_ value: Double, _ digits: Int = 2) -> String {
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let scaled = Int64((value * scale).rounded())
    let whole = scaled / Int64(scale), frac = abs(scaled % Int64(scale))
    guard digits > 0 else { return "\(whole)" }
    let f = String(frac)
    return "\(whole)." + String(repeating: "0", count: digits - f.count) + f
}
