/// A built-in ISA device's interrupt line, driven from the device's state under its lock
/// after each access (`FloppyController`, `ParallelPort`): moved only when the access
/// changed the level, so the irqchip never sees a level repeated, and in the order the
/// state changed even with two vCPUs. An access that lowered the line and raised it again
/// (a reset with an interrupt pending) gives it both edges, so an edge-triggered pin sees
/// the new interrupt.
struct InterruptLine {
    private var set: (@Sendable (Bool) -> Void)?

    /// Drives the line through `set`; before any vCPU runs. Unconnected, it drives nothing.
    mutating func connect(_ set: @escaping @Sendable (Bool) -> Void) { self.set = set }

    /// After an access that took the level from `was` to `now`; `dropped`: it went low in between.
    func follow(from was: Bool, to now: Bool, dropped: Bool = false) {
        var level = was
        if dropped, level {
            set?(false)
            level = false
        }
        if now != level { set?(now) }
    }
}
