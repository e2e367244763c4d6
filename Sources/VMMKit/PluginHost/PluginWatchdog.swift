import Glibc
import Synchronization

/// A plugin handler that ran longer than `PluginHost.handlerBudget`.
public struct PluginOverrun: Sendable, Equatable, CustomStringConvertible {
    /// The handler: plugin id, handler name and library path ("org.x 'com1' (/p/libX.so)").
    public let handler: String
    public let vcpuID: UInt32
    /// The exit it is handling ("pio in port 0x531 size 1", "mmio write 0xd0000000 len 4").
    public let exit: String
    /// How long it had run when the watchdog noticed, and the budget, in seconds.
    public let seconds: Double
    public let budget: Double
    /// The call is the plugin's `init`, `destroy` or a state save or restore (`exit` says which;
    /// `handler` names the plugin, `vcpuID` is 0): no vCPU runs it.
    public var isLifecycle = false

    public var description: String {
        let running = "(running for \(Self.format(seconds)) s; plugin code runs in process and cannot be cancelled)"
        if isLifecycle { return "plugin \(handler) exceeded its \(Self.format(budget)) s budget in \(exit) \(running)" }
        return "plugin handler \(handler) exceeded its \(Self.format(budget)) s budget on vCPU \(vcpuID) handling \(exit) \(running)"
    }

    static func format(_ s: Double) -> String {
        let ms = Int((s * 1000).rounded())
        return "\(ms / 1000).\(String(repeating: "0", count: 3 - String(ms % 1000).count))\(ms % 1000)"
    }
}

/// Watches the plugin handler calls of one `PluginHost`: a call running longer than the
/// budget is reported once, naming the plugin, the handler, the vCPU and the exit. A
/// plugin's `init`, `destroy` and state saves and restores are watched too (`PluginLifecycleCall`).
///
/// Plugins run in process as trusted code: a handler that never returns cannot be
/// cancelled or killed; its vCPU thread is lost. What the watchdog can do is say so and
/// let the VMM end the run: the default action logs the overrun and asks the VM to stop
/// with `.handlerFailed`, so every other vCPU stops; the stuck vCPU stops only if its
/// handler ever returns. A VMM that cannot wait (the `vmm` launcher) exits the process.
///
/// One thread per host while a budget is set, polling every quarter budget (1 ms to
/// 250 ms); the handler path pays four relaxed stores per call (`PluginThreadState.call`).
final class PluginWatchdog: @unchecked Sendable {
    private static let nextHostTag = Atomic<UInt32>(1)
    let hostTag = PluginWatchdog.nextHostTag.add(1, ordering: .relaxed).oldValue

    private let lock = ConditionLock()
    // Guarded by lock:
    private var handlers: [String] = []
    private var budget: Double?
    private var generation = 0
    private var thread: pthread_t?
    private var action: (@Sendable (PluginOverrun) -> Void)?

    var onOverrun: (@Sendable (PluginOverrun) -> Void)? {
        get { locked { action } }
        set { locked { action = newValue } }
    }


    private func locked<T>(_ body: () -> T) -> T { lock.withLock(body) }

    /// The tag a handler's calls are published under (`PluginThreadState.call`).
    func tag(for owner: String) -> UInt64 {
        let index = locked { handlers.append(owner); return handlers.count }
        return UInt64(hostTag) << 32 | UInt64(index)
    }

    var currentBudget: Double? { locked { budget } }

    /// Sets the budget (nil: off) and starts or stops the thread.
    func setBudget(_ seconds: Double?) throws(VMMError) {
        let (old, mine): (pthread_t?, Int) = locked {
            budget = seconds
            generation += 1
            lock.broadcast()
            let old = thread
            thread = nil
            return (old, generation)
        }
        if let old { pthread_join(old, nil) }
        guard seconds != nil else { return }
        // The thread is handed its generation: it ends as soon as a later call moves on,
        // even one made before it first ran.
        // A budget with no thread to enforce it would be one in name only: the caller hears.
        do {
            let tid = try HostThread.start("watchdog") { self.watch(generation: mine) }
            locked { thread = tid }
        } catch {
            locked { budget = nil }
            throw error
        }
    }

    func stop() { try? setBudget(nil) } // no thread is started for nil

    /// This host's calls in progress now, for diagnostics (e.g. a VM that did not stop).
    func inProgress() -> [(handler: String, vcpuID: UInt32, exit: String)] {
        PluginCallSlot.registry.inProgress().compactMap { _, call in
            guard call.hostTag == hostTag, let name = handlerName(call.handlerIndex) else { return nil }
            return (name, call.vcpuID, describe(call))
        }
    }

    /// The outermost call's exit, and the nested call it is in now, if any: "pio out
    /// port 0xe4 size 4, now in org.x 'apf' (/p/libX.so) handling async-PF event kind 2 at 0x0".
    private func describe(_ call: PluginCallSnapshot) -> String {
        guard let nested = call.nested else { return call.exitDescription }
        let inner = PluginCallSnapshot(call: call.call, tag: nested.tag, what: nested.what, address: nested.address)
        let name = inner.hostTag == hostTag ? handlerName(inner.handlerIndex) : nil
        return "\(call.exitDescription), now in \(name ?? "a plugin call") handling \(inner.exitDescription)"
    }

    private func handlerName(_ index: Int) -> String? {
        locked { handlers.indices.contains(index) ? handlers[index] : nil }
    }

    private static func now() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }

    private func watch(generation: Int) {
        let budget = locked { self.budget ?? 0 }
        let period = min(max(budget / 4, 0.001), 0.25)
        // A call is identified by its thread's slot and call count; first seen at...
        typealias Seen = (call: UInt64, since: Double, reported: Bool)
        var seen: [ObjectIdentifier: Seen] = [:]
        while true {
            let deadline = Deadline.after(seconds: period)
            let go: Bool = locked {
                while self.generation == generation {
                    if !lock.wait(until: deadline) { return true }
                }
                return false
            }
            guard go else { return }
            let now = Self.now()
            var next: [ObjectIdentifier: Seen] = [:]
            for (id, call) in PluginCallSlot.registry.inProgress() where call.hostTag == hostTag {
                var entry: Seen = (call.call, now, false)
                if let old = seen[id], old.call == call.call { entry = old }
                if !entry.reported, now - entry.since >= budget, let name = handlerName(call.handlerIndex) {
                    entry.reported = true
                    let overrun = PluginOverrun(handler: name, vcpuID: call.vcpuID, exit: describe(call),
                                                seconds: now - entry.since, budget: budget, isLifecycle: call.isLifecycle)
                    onOverrun?(overrun)
                }
                next[id] = entry
            }
            seen = next
        }
    }
}

extension PluginHost {
    /// How long one plugin handler call may run, in seconds, before the watchdog reports
    /// it (`onHandlerOverrun`); nil (the default) turns the watchdog off. The time a
    /// call has run is measured from when the watchdog first saw it, so a report comes
    /// between `budget` and about 1.25 x `budget` after the call started.
    ///
    /// Plugins run in process as trusted code: an overrunning handler cannot be
    /// cancelled. By default the overrun is logged (error, under the plugin's id) and
    /// the VM is asked to stop with `.handlerFailed(<the overrun>)`; the vCPU in the
    /// handler stops only if the handler returns, so `vm.run` may not return. A VMM
    /// that must not hang sets `onHandlerOverrun` to end the process after reporting.
    public var handlerBudget: Double? { watchdog.currentBudget }

    /// Sets `handlerBudget`: seconds in (0, 86400], or nil to turn the watchdog off.
    /// Call it from one thread at a time (the control thread); it applies to calls already running.
    public func setHandlerBudget(_ seconds: Double?) throws(VMMError) {
        if let seconds, !(seconds > 0 && seconds <= 86_400) {
            throw .invalidArgument("handler budget must be more than 0 and at most 86400 seconds, not \(seconds)")
        }
        if watchdog.onOverrun == nil { watchdog.onOverrun = defaultOverrunAction() }
        try watchdog.setBudget(closed ? nil : seconds)
    }

    /// Called on the watchdog's thread, once per overrunning call. Set before the budget.
    public var onHandlerOverrun: (@Sendable (PluginOverrun) -> Void)? {
        get { watchdog.onOverrun }
        set { watchdog.onOverrun = newValue }
    }

    /// The default action: log and ask the VM to stop with `.handlerFailed`.
    public func defaultOverrunAction() -> @Sendable (PluginOverrun) -> Void {
        let vm = self.vm, log = logHandler
        return { overrun in
            log(.error, String(overrun.handler.prefix { $0 != " " }), overrun.description)
            vm.requestStop(.handlerFailed(overrun.description))
        }
    }

    /// Plugin handler calls of this host running right now: (handler, vCPU, exit).
    public func handlerCallsInProgress() -> [(handler: String, vcpuID: UInt32, exit: String)] {
        watchdog.inProgress()
    }
}
