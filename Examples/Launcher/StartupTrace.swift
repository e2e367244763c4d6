import Glibc

/// `VMM_STARTUP_TRACE=1`: at the end of `vmm run` one line on stderr gives the
/// CLOCK_MONOTONIC time (ns) of each start-up milestone, so a parent that noted the
/// time before spawning can split start-up (`VMMBench startup`). Off: one getenv.
enum StartupTrace {
    static let enabled = getenv("VMM_STARTUP_TRACE") != nil
    nonisolated(unsafe) private static var marks: [(String, UInt64)] = []

    static func mark(_ name: String) {
        guard enabled else { return }
        marks.append((name, MonotonicClock.now()))
    }

    static func report() {
        guard enabled else { return }
        let line = "vmm-startup:" + marks.map { " \($0.0)=\($0.1)" }.joined() + "\n"
        ExitStats.err(line)
    }
}
