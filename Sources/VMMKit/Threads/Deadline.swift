import Glibc

/// Absolute CLOCK_MONOTONIC times for `pthread_cond_timedwait`, on condition variables
/// made by `initCondition`, which wait on that clock. Built in one place: five waits each
/// added seconds and carried nanoseconds by hand. Not the wall clock (a condition
/// variable's default): a host clock stepped by NTP or by hand moved every wait with it,
/// so a step back of an hour held an HPET or RTC interrupt, the handler watchdog and
/// `--max-seconds` an hour late, and a step forward ended them at once.
public enum Deadline {
    /// Initialises `cond` to time its waits on CLOCK_MONOTONIC, the clock of `after`.
    public static func initCondition(_ cond: UnsafeMutablePointer<pthread_cond_t>) {
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        pthread_cond_init(cond, &attr)
        pthread_condattr_destroy(&attr)
    }

    /// `seconds` from now on CLOCK_MONOTONIC, clamped to [0, 1e9] (NaN as 0): no
    /// Double-to-Int conversion can trap, whatever a caller's flag or budget holds.
    public static func after(seconds: Double) -> timespec {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let clamped = seconds.isNaN ? 0 : min(max(seconds, 0), 1e9)
        let whole = Int(clamped.rounded(.down))
        var nanos = now.tv_nsec + Int((clamped - Double(whole)) * 1e9)
        var secs = now.tv_sec + whole
        if nanos >= 1_000_000_000 { nanos -= 1_000_000_000; secs += 1 }
        return timespec(tv_sec: secs, tv_nsec: nanos)
    }
}
