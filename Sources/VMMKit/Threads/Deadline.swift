import Glibc

/// Absolute CLOCK_REALTIME times for `pthread_cond_timedwait`, whose condition variables
/// use that clock unless told otherwise. Built in one place: five waits each added
/// seconds and carried nanoseconds by hand.
public enum Deadline {
    /// `seconds` from now, clamped to [0, 1e9] (NaN as 0): no Double-to-Int conversion
    /// can trap, whatever a caller's flag or budget holds.
    public static func after(seconds: Double) -> timespec {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let clamped = seconds.isNaN ? 0 : min(max(seconds, 0), 1e9)
        let whole = Int(clamped.rounded(.down))
        var nanos = now.tv_nsec + Int((clamped - Double(whole)) * 1e9)
        var secs = now.tv_sec + whole
        if nanos >= 1_000_000_000 { nanos -= 1_000_000_000; secs += 1 }
        return timespec(tv_sec: secs, tv_nsec: nanos)
    }
}
