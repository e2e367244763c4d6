import CVMMPlugin
import Glibc

// The C functions the host calls for a Swift handler (`vmm_handler_desc_t.handle`), one
// per view and per throwing or not, each with the box that holds the handler. Each is a
// private `@c` symbol, local to the plugin's library, that the host calls with no thunk
// in between (a closure converted to a C pointer got one: 4 instructions per exit), and
// calls its handler with its view directly, with no closure wrapping it into a
// raw-record handler (a call layer less, ~11 instructions per exit). The bodies are
// alike on purpose: merged, they got an LLVM thunk that costs instructions per exit.

typealias HandlerTrampoline = PluginHandlerFunction

/// A handler as the host calls it (`vmm_handler_desc_t.handle`): the SDK's trampolines,
/// or a plugin's own function (`PluginServices.registerFunction`).
public typealias PluginHandlerFunction = @convention(c) (UnsafeMutableRawPointer?, UnsafeMutablePointer<vmm_exit_t>?) -> vmm_verdict_t

/// A Swift handler behind the C trampoline the host calls.
final class HandlerBox {
    let body: (UnsafeMutablePointer<vmm_exit_t>) throws -> PluginVerdict

    init(_ body: @escaping (UnsafeMutablePointer<vmm_exit_t>) throws -> PluginVerdict) { self.body = body }

    /// [vcpu-thread] Never lets a Swift error reach the host: it becomes FAIL + message.
    static let trampoline: HandlerTrampoline = rawTrampoline

    /// The C verdict of a Swift one (every trampoline's, through `answer`). `.handled`
    /// (the usual answer) is tested alone, one test of a returned register: the switch
    /// over the four cases, inline, cost every exit a bound check, a table load and a
    /// jump (2 instructions more on HLT, 1 on PIO and MMIO, by callgrind).
    @inline(__always)
    static func verdict(_ v: PluginVerdict, _ record: UnsafeMutablePointer<vmm_exit_t>) -> vmm_verdict_t {
        if case .handled = v { return VMM_HANDLED.rawValue }
        return settled(v, record)
    }

    /// The other verdicts, and `.fail`'s message, out of line (as `thrown`): keeping
    /// the payload alive across the call cost every trampoline two saved registers.
    @inline(never)
    static func settled(_ v: __owned PluginVerdict, _ record: UnsafeMutablePointer<vmm_exit_t>) -> vmm_verdict_t {
        switch v {
        case .handled: return VMM_HANDLED.rawValue
        case .notMine: return VMM_NOT_MINE.rawValue
        case .backingReplaced: return VMM_BACKING_REPLACED
        case .fail(let message): return fail(record, message)
        }
    }

    @inline(never)
    static func noUser(_ record: UnsafeMutablePointer<vmm_exit_t>) -> vmm_verdict_t {
        fail(record, "a handler was called without the user pointer it was registered with")
    }

    @inline(never)
    static func wrongClass(_ record: UnsafeMutablePointer<vmm_exit_t>) -> vmm_verdict_t {
        fail(record, "a handler registered for one exit class was called with exit class \(record.pointee.exit_class)")
    }

    /// A handler's error as FAIL + its description. Out of line: inlined, the
    /// interpolation gave every trampoline a frame of 6 saved registers and 56 bytes.
    @inline(never)
    static func thrown(_ record: UnsafeMutablePointer<vmm_exit_t>, _ error: any Error) -> vmm_verdict_t {
        fail(record, "\(error)")
    }

    /// Points `message` at a per-thread copy, valid until the next failure on this
    /// thread (the header asks for "until the next call on this vCPU").
    static func fail(_ record: UnsafeMutablePointer<vmm_exit_t>, _ message: String) -> vmm_verdict_t {
        let slot = MessageSlot.current
        free(slot.text)
        slot.text = strdup(message)
        record.pointee.message = UnsafePointer(slot.text)
        return VMM_FAIL.rawValue
    }
}

@c(vmmkit_sdk_raw_trampoline)
private func rawTrampoline(_ user: UnsafeMutableRawPointer?, _ record: UnsafeMutablePointer<vmm_exit_t>?) -> vmm_verdict_t {
    answer(user, record, exitClass: nil) { user, record in
        try Unmanaged<HandlerBox>.fromOpaque(user)._withUnsafeGuaranteedRef { try $0.body(record) }
    }
}

/// What every trampoline does around its handler's call: refuses a null pointer and
/// (for a typed handler) a record of another exit class, and turns the handler's answer
/// or error into the host's verdict. Never lets a Swift error reach the host. For a
/// handler that cannot throw (`Failure` is `Never`) the `catch` is gone once inlined.
@inline(__always)
private func answer<Failure: Error>(
    _ user: UnsafeMutableRawPointer?, _ record: UnsafeMutablePointer<vmm_exit_t>?, exitClass: vmm_exit_class?,
    _ call: (UnsafeMutableRawPointer, UnsafeMutablePointer<vmm_exit_t>) throws(Failure) -> PluginVerdict
) -> vmm_verdict_t {
    // Two answers, so two tests and branches: one `guard let user, let record` merged
    // the tests with setcc into one branch, 3 instructions more per call.
    guard let record else { return VMM_FAIL.rawValue }
    guard let user else { return HandlerBox.noUser(record) }
    // A typed trampoline is registered for its class only; checking costs a compare and
    // keeps the trampolines' bodies from being merged (a thunk more per call).
    if let exitClass, record.pointee.exit_class != exitClass.rawValue { return HandlerBox.wrongClass(record) }
    // The host keeps the box alive (PluginServices.boxes): the call borrows it, no retain.
    do {
        return HandlerBox.verdict(try call(user, record), record)
    } catch {
        return HandlerBox.thrown(record, error)
    }
}

/// A port handler behind a trampoline of its own.
final class PIOHandlerBox {
    let body: (PIOExit) throws -> PluginVerdict

    init(_ body: @escaping (PIOExit) throws -> PluginVerdict) { self.body = body }

    /// [vcpu-thread] As `HandlerBox.trampoline`.
    static let trampoline: HandlerTrampoline = pioTrampoline
}

@c(vmmkit_sdk_pio_trampoline)
private func pioTrampoline(_ user: UnsafeMutableRawPointer?, _ record: UnsafeMutablePointer<vmm_exit_t>?) -> vmm_verdict_t {
    answer(user, record, exitClass: VMM_EXIT_PIO) { user, record in
        try Unmanaged<PIOHandlerBox>.fromOpaque(user)._withUnsafeGuaranteedRef { try $0.body(PIOExit(record: record)) }
    }
}

/// An MMIO handler behind a trampoline of its own (as `PIOHandlerBox`).
final class MMIOHandlerBox {
    let body: (MMIOExit) throws -> PluginVerdict

    init(_ body: @escaping (MMIOExit) throws -> PluginVerdict) { self.body = body }

    /// [vcpu-thread] As `HandlerBox.trampoline`.
    static let trampoline: HandlerTrampoline = mmioTrampoline
}

@c(vmmkit_sdk_mmio_trampoline)
private func mmioTrampoline(_ user: UnsafeMutableRawPointer?, _ record: UnsafeMutablePointer<vmm_exit_t>?) -> vmm_verdict_t {
    answer(user, record, exitClass: VMM_EXIT_MMIO) { user, record in
        try Unmanaged<MMIOHandlerBox>.fromOpaque(user)._withUnsafeGuaranteedRef { try $0.body(MMIOExit(record: record)) }
    }
}

/// A raw-record handler that cannot throw (`PluginServices.registerRaw`).
final class PlainHandlerBox {
    let body: (UnsafeMutablePointer<vmm_exit_t>) -> PluginVerdict

    init(_ body: @escaping (UnsafeMutablePointer<vmm_exit_t>) -> PluginVerdict) { self.body = body }

    /// [vcpu-thread] As `HandlerBox.trampoline`.
    static let trampoline: HandlerTrampoline = plainRawTrampoline
}

@c(vmmkit_sdk_plain_raw_trampoline)
private func plainRawTrampoline(_ user: UnsafeMutableRawPointer?, _ record: UnsafeMutablePointer<vmm_exit_t>?) -> vmm_verdict_t {
    answer(user, record, exitClass: nil) { user, record in
        Unmanaged<PlainHandlerBox>.fromOpaque(user)._withUnsafeGuaranteedRef { $0.body(record) }
    }
}

/// A port handler that cannot throw (`PluginServices.registerPIO`).
final class PlainPIOHandlerBox {
    let body: (PIOExit) -> PluginVerdict

    init(_ body: @escaping (PIOExit) -> PluginVerdict) { self.body = body }

    /// [vcpu-thread] As `HandlerBox.trampoline`.
    static let trampoline: HandlerTrampoline = plainPIOTrampoline
}

@c(vmmkit_sdk_plain_pio_trampoline)
private func plainPIOTrampoline(_ user: UnsafeMutableRawPointer?, _ record: UnsafeMutablePointer<vmm_exit_t>?) -> vmm_verdict_t {
    answer(user, record, exitClass: VMM_EXIT_PIO) { user, record in
        Unmanaged<PlainPIOHandlerBox>.fromOpaque(user)._withUnsafeGuaranteedRef { $0.body(PIOExit(record: record)) }
    }
}

/// An MMIO handler that cannot throw (`PluginServices.registerMMIO`).
final class PlainMMIOHandlerBox {
    let body: (MMIOExit) -> PluginVerdict

    init(_ body: @escaping (MMIOExit) -> PluginVerdict) { self.body = body }

    /// [vcpu-thread] As `HandlerBox.trampoline`.
    static let trampoline: HandlerTrampoline = plainMMIOTrampoline
}

@c(vmmkit_sdk_plain_mmio_trampoline)
private func plainMMIOTrampoline(_ user: UnsafeMutableRawPointer?, _ record: UnsafeMutablePointer<vmm_exit_t>?) -> vmm_verdict_t {
    answer(user, record, exitClass: VMM_EXIT_MMIO) { user, record in
        Unmanaged<PlainMMIOHandlerBox>.fromOpaque(user)._withUnsafeGuaranteedRef { $0.body(MMIOExit(record: record)) }
    }
}
