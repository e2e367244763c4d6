import CVMMPlugin
import Glibc
import Synchronization

/// What one thread is calling into plugin code right now, readable from another thread
/// (the `PluginWatchdog`). Every plugin handler call goes through `PluginThreadState.call`,
/// which publishes the handler's tag, the vCPU and the exit before the call and clears
/// the tag after it: four relaxed stores, no clock, no lock.
///
/// A reader takes `calls`, then the fields, then `calls` again: equal counts and a
/// non-zero `busy` mean the fields describe one call that is still running.
///
/// A call made inside another on the same thread (a handler raising an async-PF event,
/// a pager fetching a page inside an exit) is published over the outer one, which is
/// kept in the `outer…` fields, and does not count as a call of its own: the watchdog
/// times the outermost call. Counting it let a handler that called the host in a loop
/// look like a new call after each nested one, so it was never reported.
final class PluginCallSlot: @unchecked Sendable {
    private let padBefore = CacheLinePad()
    /// (host tag << 32) | (handler index + 1) while a handler runs; 0 when idle.
    let busy = Atomic<UInt64>(0)
    /// Counts calls started on this thread (written by its thread only).
    let calls = Atomic<UInt64>(0)
    /// (vCPU id << 32) | (exit class << 24) | (is_write << 23) | size.
    let what = Atomic<UInt64>(0)
    /// Port, guest-physical address, MSR index or KVM exit reason of the exit.
    let address = Atomic<UInt64>(0)
    /// The outermost call's `busy`, `what` and `address` while a nested call is
    /// published; `outerBusy` is 0 otherwise.
    let outerBusy = Atomic<UInt64>(0)
    let outerWhat = Atomic<UInt64>(0)
    let outerAddress = Atomic<UInt64>(0)
    /// A sequence count for nested calls, which leave `calls` alone: odd while a nested
    /// call's start or end rewrites the fields, even otherwise. A reader refuses an odd
    /// count and one that changed while it read (a seqlock). Bumped only around the
    /// rewrite, it once let a reader see the outer call restored in `busy` with
    /// `outerBusy` not yet cleared: the outer call reported as nested in itself.
    let nestings = Atomic<UInt64>(0)
    private let padAfter = CacheLinePad()
    /// The registry's list links, guarded by its lock. Unmanaged, never retained: a
    /// strong reference taken under the lock could be the last one, and releasing it
    /// would run `deinit`, whose `remove` waits for the same lock (a self-deadlock).
    var next: Unmanaged<PluginCallSlot>?
    var previous: Unmanaged<PluginCallSlot>?

    init() { Self.registry.add(self) }
    deinit { Self.registry.remove(self) }

    /// Every thread's slot, for the watchdogs.
    static let registry = SlotRegistry()

    /// A consistent view of the call in progress, if any. A read torn by a nested call
    /// starting or ending meanwhile is taken again, a bounded number of times: a thread
    /// nesting calls in a tight loop cannot hold the watchdog, and a poll that finds no
    /// consistent view restarts that call's timer.
    func snapshot() -> PluginCallSnapshot? {
        for _ in 0..<16 {
            switch read() {
            case .idle: return nil
            case let .call(snapshot): return snapshot
            case .torn: continue
            }
        }
        return nil
    }

    private enum Read { case idle, torn, call(PluginCallSnapshot) }

    private func read() -> Read {
        // `busy` is read inside the checked window too: read before it, an outer call's
        // tag seen between two nested calls came back after the next one, and the read
        // paired it with that nested call's fields.
        let nestingsBefore = nestings.load(ordering: .acquiring)
        // Odd: a nested call is being published or taken down, the fields half-written.
        guard nestingsBefore & 1 == 0 else { return .torn }
        let before = calls.load(ordering: .acquiring)
        let tag = busy.load(ordering: .acquiring)
        guard tag != 0 else { return .idle }
        let what = what.load(ordering: .acquiring)
        let address = address.load(ordering: .acquiring)
        let outer = (outerBusy.load(ordering: .acquiring), outerWhat.load(ordering: .acquiring),
                     outerAddress.load(ordering: .acquiring))
        guard calls.load(ordering: .acquiring) == before, nestings.load(ordering: .acquiring) == nestingsBefore,
              busy.load(ordering: .acquiring) == tag else { return .torn }
        let inner = PluginCallSnapshot(call: before, tag: tag, what: what, address: address)
        guard outer.0 != 0 else { return .call(inner) }
        var outermost = PluginCallSnapshot(call: before, tag: outer.0, what: outer.1, address: outer.2)
        outermost.nested = (tag, what, address)
        return .call(outermost)
    }
}

/// One thread's call in progress: the outermost call, and the call nested in it (if
/// any) that runs now.
struct PluginCallSnapshot {
    let call: UInt64
    let tag: UInt64
    let what: UInt64
    let address: UInt64
    /// The nested call running inside this one: its tag, `what` and address.
    var nested: (tag: UInt64, what: UInt64, address: UInt64)?

    var hostTag: UInt32 { UInt32(truncatingIfNeeded: tag >> 32) }
    var handlerIndex: Int { Int(truncatingIfNeeded: tag & 0xffff_ffff) - 1 }
    var vcpuID: UInt32 { UInt32(truncatingIfNeeded: what >> 32) }

    /// "pio in port 0x531 size 1", "mmio write 0xd0000000 len 4", ...
    var exitDescription: String {
        let cls = UInt32(truncatingIfNeeded: (what >> 24) & 0xff)
        let isWrite = (what >> 23) & 1 == 1
        let size = what & 0x7f_ffff
        switch cls {
        case VMM_EXIT_PIO.rawValue: return "pio \(isWrite ? "out" : "in") port \(hex(address)) size \(size)"
        case VMM_EXIT_MMIO.rawValue: return "mmio \(isWrite ? "write" : "read") \(hex(address)) len \(size)"
        case VMM_EXIT_MSR.rawValue: return "\(isWrite ? "wrmsr" : "rdmsr") \(hex(address))"
        case VMM_EXIT_MEMORY_FAULT.rawValue: return "memory fault at \(hex(address))"
        case VMM_EXIT_ASYNC_PF.rawValue: return "async-PF event kind \(size) at \(hex(address))"
        case VMM_EXIT_HLT.rawValue: return "hlt" // `address` unread: the hot HLT call leaves it stale
        case VMM_EXIT_OTHER.rawValue: return "KVM exit reason \(address)"
        case PluginCallSlot.lifecycleClass: return PluginLifecycleCall(rawValue: size).map { "\($0)" } ?? "lifecycle call \(size)"
        case PluginCallSlot.hypercallClass: return "typed hypercall \(address)"
        default: return "exit class \(cls)"
        }
    }
}

/// The process's slots, behind a mutex (touched when a thread first calls a plugin,
/// when it ends, and by watchdog polls). An intrusive list: registering a slot from a
/// vCPU thread allocates nothing (a growing table would move between malloc arenas).
final class SlotRegistry: @unchecked Sendable {
    private let lock = Lock(())
    private var head: Unmanaged<PluginCallSlot>? // guarded by lock

    func add(_ slot: PluginCallSlot) {
        let node = Unmanaged.passUnretained(slot)
        lock.withLock { _ in
            slot.next = head
            head?._withUnsafeGuaranteedRef { $0.previous = node }
            head = node
        }
    }

    func remove(_ slot: PluginCallSlot) {
        lock.withLock { _ in
            let (next, previous) = (slot.next, slot.previous)
            if let previous { previous._withUnsafeGuaranteedRef { $0.next = next } } else { head = next }
            next?._withUnsafeGuaranteedRef { $0.previous = previous }
            slot.next = nil
            slot.previous = nil
        }
    }

    /// Snapshots of the calls in progress on every thread. Taken under the lock, so no
    /// slot is freed while it is read (its `deinit` waits in `remove`), and without
    /// retaining any slot, so no `deinit` can run here.
    func inProgress() -> [(ObjectIdentifier, PluginCallSnapshot)] {
        lock.withLock { _ in
            var out: [(ObjectIdentifier, PluginCallSnapshot)] = []
            var cursor = head
            while let node = cursor {
                cursor = node._withUnsafeGuaranteedRef { slot in
                    if let call = slot.snapshot() { out.append((ObjectIdentifier(slot), call)) }
                    return slot.next
                }
            }
            return out
        }
    }

    /// Whether a registered slot satisfies `predicate`, called under the lock (for tests:
    /// the slots of threads that ended must be gone).
    func contains(where predicate: (PluginCallSlot) -> Bool) -> Bool {
        lock.withLock { _ in
            var cursor = head
            while let node = cursor {
                if node._withUnsafeGuaranteedRef(predicate) { return true }
                cursor = node._withUnsafeGuaranteedRef { $0.next }
            }
            return false
        }
    }
}

typealias PluginHandleFunction = @convention(c) (UnsafeMutableRawPointer?, UnsafeMutablePointer<vmm_exit_t>?) -> vmm_verdict_t

extension PluginThreadState {
    /// Calls a plugin handler with the call published in this thread's slot. Nested
    /// calls (a handler raising an async-PF event, a pager fetching a page inside an
    /// exit) restore the outer call's view when they return.
    @inline(__always)
    func call(_ fn: PluginHandleFunction, _ user: UnsafeMutableRawPointer?,
              _ record: UnsafeMutablePointer<vmm_exit_t>, _ tag: UInt64) -> vmm_verdict_t {
        let (what, address) = PluginCallSlot.describe(record)
        return call(fn, user, record, tag, what: what, address: address)
    }

    /// `call` with the slot's description given by a caller that already knows it
    /// (PIO and MMIO: `PluginCallSlot.what`), so the hot path skips `describe`.
    @inline(__always)
    func call(_ fn: PluginHandleFunction, _ user: UnsafeMutableRawPointer?,
              _ record: UnsafeMutablePointer<vmm_exit_t>, _ tag: UInt64, what: UInt64, address: UInt64) -> vmm_verdict_t {
        if slot.busy.load(ordering: .relaxed) != 0 { return nestedCall(fn, user, record, tag, what: what, address: address) }
        return outermostCall(fn, user, record, tag, what: what, address: address)
    }

    /// `call` where no plugin call can be in progress on this thread: from the run
    /// loop's hot path, which runs at the top of the vCPU's thread and never inside a
    /// handler. No test for nesting: 3 instructions fewer a plugin exit (callgrind).
    /// The slot's fields are written in any order before `busy`, which publishes them
    /// (a reader that sees `busy` 0 reads none of them).
    @inline(__always)
    func outermostCall(_ fn: PluginHandleFunction, _ user: UnsafeMutableRawPointer?,
                       _ record: UnsafeMutablePointer<vmm_exit_t>, _ tag: UInt64, what: UInt64, address: UInt64) -> vmm_verdict_t {
        slot.address.store(address, ordering: .releasing)
        return outermostCall(fn, user, record, tag, what: what)
    }

    /// `outermostCall` for an exit whose description names no address (a HLT,
    /// `PluginCallSnapshot.exitDescription`): the slot's address is left as the last
    /// call set it, unread (1 instruction fewer a HLT).
    @inline(__always)
    func outermostCall(_ fn: PluginHandleFunction, _ user: UnsafeMutableRawPointer?,
                       _ record: UnsafeMutablePointer<vmm_exit_t>, _ tag: UInt64, what: UInt64) -> vmm_verdict_t {
        let slot = self.slot
        assert(slot.busy.load(ordering: .relaxed) == 0, "a plugin call from the hot path inside another")
        slot.calls.store(slot.calls.load(ordering: .relaxed) &+ 1, ordering: .releasing)
        slot.what.store(what, ordering: .releasing)
        slot.busy.store(tag, ordering: .releasing)
        let verdict = fn(user, record)
        slot.busy.store(0, ordering: .releasing)
        return verdict
    }

    /// `call` inside another plugin call on this thread: the outer call's view is
    /// restored when this one returns.
    @inline(never)
    private func nestedCall(_ fn: PluginHandleFunction, _ user: UnsafeMutableRawPointer?,
                            _ record: UnsafeMutablePointer<vmm_exit_t>, _ tag: UInt64, what: UInt64, address: UInt64) -> vmm_verdict_t {
        publishing(tag: tag, what: what, address: address) { fn(user, record) }
    }

    /// Runs `body` with the call (`tag`, `what`, `address`) published in this thread's
    /// slot; the view before it (an outer call's, or idle) is restored after it.
    ///
    /// A call inside another keeps the outer call's count (the watchdog times the
    /// outermost call) and, at the first level of nesting, records the outer call in the
    /// slot's `outer…` fields for the report.
    func publishing<T, E: Error>(tag: UInt64, what: UInt64, address: UInt64, _ body: () throws(E) -> T) throws(E) -> T {
        let slot = self.slot
        let outer = (slot.busy.load(ordering: .relaxed), slot.what.load(ordering: .relaxed),
                     slot.address.load(ordering: .relaxed))
        let firstNesting = outer.0 != 0 && slot.outerBusy.load(ordering: .relaxed) == 0
        func bumpNestings() { slot.nestings.store(slot.nestings.load(ordering: .relaxed) &+ 1, ordering: .releasing) }
        if outer.0 == 0 {
            slot.calls.store(slot.calls.load(ordering: .relaxed) &+ 1, ordering: .releasing)
        } else {
            bumpNestings() // odd: the fields change
            if firstNesting {
                slot.outerWhat.store(outer.1, ordering: .releasing)
                slot.outerAddress.store(outer.2, ordering: .releasing)
                slot.outerBusy.store(outer.0, ordering: .releasing)
            }
        }
        slot.what.store(what, ordering: .releasing)
        slot.address.store(address, ordering: .releasing)
        slot.busy.store(tag, ordering: .releasing)
        if outer.0 != 0 { bumpNestings() } // even: the nested call is published
        defer {
            if outer.0 == 0 {
                slot.busy.store(0, ordering: .releasing) // idle: the other fields mean nothing now
            } else {
                bumpNestings() // odd
                slot.what.store(outer.1, ordering: .releasing)
                slot.address.store(outer.2, ordering: .releasing)
                slot.busy.store(outer.0, ordering: .releasing)
                if firstNesting { slot.outerBusy.store(0, ordering: .releasing) }
                bumpNestings() // even: the outer call is back
            }
        }
        return try body()
    }
}

/// A plugin entry point called outside exit handling, published in the caller's slot
/// under the pseudo exit class `PluginCallSlot.lifecycleClass` (its kind as the size), so
/// the watchdog also sees a plugin that never returns from its `init`, its `destroy` or
/// a state call.
enum PluginLifecycleCall: UInt64, CustomStringConvertible {
    case initialize = 0, stateSave = 1, stateRestore = 2, destroy = 3

    var description: String {
        switch self {
        case .initialize: "init"
        case .stateSave: "state save"
        case .stateRestore: "state restore"
        case .destroy: "destroy"
        }
    }
}

extension PluginCallSlot {
    /// Above every `vmm_exit_class_t`.
    static let lifecycleClass: UInt32 = 0xff
    /// A typed hypercall's function (its number as the address).
    static let hypercallClass: UInt32 = 0xfe
}

extension PluginCallSnapshot {
    var isLifecycle: Bool { UInt32(truncatingIfNeeded: (what >> 24) & 0xff) == PluginCallSlot.lifecycleClass }
}

extension PluginThreadState {
    /// Runs `body`, a call into a plugin's lifecycle entry point, published in this
    /// thread's slot under `tag` (`PluginInstance.lifecycleTag`).
    func lifecycleCall<T, E: Error>(_ tag: UInt64, _ kind: PluginLifecycleCall, _ body: () throws(E) -> T) throws(E) -> T {
        let what = PluginCallSlot.what(vcpu: 0, exitClass: PluginCallSlot.lifecycleClass, isWrite: false, size: Int(kind.rawValue))
        return try publishing(tag: tag, what: what, address: 0, body)
    }
}

extension PluginCallSlot {
    /// The `what` word of a call: (vCPU id << 32) | (exit class << 24) | (is_write << 23) | size.
    @inline(__always)
    static func what(vcpu: UInt32, exitClass: UInt32, isWrite: Bool, size: Int) -> UInt64 {
        UInt64(vcpu) << 32 | UInt64(exitClass & 0xff) << 24 | (isWrite ? 1 << 23 : 0) | (UInt64(truncatingIfNeeded: size) & 0x7f_ffff)
    }

    /// `what` for a size known to be below 2^23 (the hot path's: PIO 1, 2 or 4, MMIO 1
    /// to 8 bytes, checked by the canary), without the mask.
    @inline(__always)
    static func what(vcpu: UInt32, exitClass: UInt32, isWrite: Bool, smallSize size: Int) -> UInt64 {
        UInt64(vcpu) << 32 | UInt64(exitClass & 0xff) << 24 | (isWrite ? 1 << 23 : 0) | UInt64(truncatingIfNeeded: size)
    }

    @inline(__always)
    static func describe(_ r: UnsafeMutablePointer<vmm_exit_t>) -> (UInt64, UInt64) {
        let cls = r.pointee.exit_class
        var address: UInt64 = 0, size: UInt64 = 0, write = false
        switch cls {
        case VMM_EXIT_PIO.rawValue:
            (address, size, write) = (UInt64(r.pointee.pio.port), UInt64(r.pointee.pio.size), r.pointee.pio.is_write != 0)
        case VMM_EXIT_MMIO.rawValue:
            (address, size, write) = (r.pointee.mmio.gpa, UInt64(r.pointee.mmio.len), r.pointee.mmio.is_write != 0)
        case VMM_EXIT_MSR.rawValue: (address, write) = (UInt64(r.pointee.msr.index), r.pointee.msr.is_write != 0)
        case VMM_EXIT_MEMORY_FAULT.rawValue: address = r.pointee.memory_fault.gpa
        case VMM_EXIT_ASYNC_PF.rawValue: (address, size) = (r.pointee.async_pf.gpa, UInt64(r.pointee.async_pf.kind & 0x7f_ffff))
        case VMM_EXIT_OTHER.rawValue: address = UInt64(r.pointee.other.kvm_exit_reason)
        default: break
        }
        return (what(vcpu: r.pointee.vcpu_id, exitClass: cls, isWrite: write, size: Int(truncatingIfNeeded: size)), address)
    }
}
