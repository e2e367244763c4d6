#if canImport(Glibc)
import Glibc
#endif

/// CLOCK_MONOTONIC in nanoseconds: the launcher's one clock for exit timing, start-up
/// marks, deadlines and the PM timer (never set back, unlike the wall clock).
enum MonotonicClock {
    @Sendable static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }
}
