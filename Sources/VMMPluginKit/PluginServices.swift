import CVMMPlugin
import Glibc

/// The host's services for one plugin instance: a safe face on `vmm_host_t`.
/// Valid from `init` until `shutdown` returns.
public final class PluginServices {
    public let raw: UnsafePointer<vmm_host_t>
    let pluginName: String
    /// Handler boxes the host holds unretained pointers to; released with the instance.
    var boxes: [AnyObject] = []

    init(_ raw: UnsafePointer<vmm_host_t>, pluginName: String) {
        self.raw = raw
        self.pluginName = pluginName
    }

    private var data: UnsafeMutableRawPointer? { raw.pointee.host_data }

    public enum LogLevel: UInt32 { case error = 0, warn, info, debug, trace }

    /// [any-thread]
    public func log(_ level: LogLevel, _ message: String) {
        raw.pointee.log(data, level.rawValue, message)
    }

    /// [any-thread] Reads guest-physical memory.
    public func readGuest(_ gpa: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        guard raw.pointee.read_guest(data, gpa, buffer.baseAddress, buffer.count) == 0 else {
            throw VMMPluginError("guest-physical range 0x\(String(gpa, radix: 16))+\(buffer.count) is not guest RAM")
        }
    }

    /// [any-thread] Writes guest-physical memory.
    public func writeGuest(_ gpa: UInt64, from buffer: UnsafeRawBufferPointer) throws {
        guard raw.pointee.write_guest(data, gpa, buffer.baseAddress, buffer.count) == 0 else {
            throw VMMPluginError("guest-physical range 0x\(String(gpa, radix: 16))+\(buffer.count) is not guest RAM")
        }
    }

    /// [vcpu-thread] A register of the vCPU in an exit on this thread.
    public func register(_ reg: vmm_reg, vcpu: UInt32) throws -> UInt64 {
        var value: UInt64 = 0
        let rc = raw.pointee.get_reg(data, vcpu, reg.rawValue, &value)
        guard rc == 0 else { throw VMMPluginError("get_reg(\(reg.rawValue)) on vCPU \(vcpu): errno \(-rc)") }
        return value
    }

    /// [vcpu-thread] Sets a register; it takes effect when the vCPU resumes.
    public func setRegister(_ reg: vmm_reg, vcpu: UInt32, _ value: UInt64) throws {
        let rc = raw.pointee.set_reg(data, vcpu, reg.rawValue, value)
        guard rc == 0 else { throw VMMPluginError("set_reg(\(reg.rawValue)) on vCPU \(vcpu): errno \(-rc)") }
    }

    /// [any-thread] Stops the whole VM (vcpu -1) or one vCPU after the current exit;
    /// `exitCode` becomes its result.
    public func requestStop(vcpu: Int32 = -1, exitCode: Int32, reason: String) {
        raw.pointee.request_stop(data, vcpu, exitCode, reason)
    }

    /// [any-thread] A host extension table by id (`VMM_EXT_*`), or nil.
    public func hostExtension(_ id: String) -> UnsafeRawPointer? {
        raw.pointee.get_extension(data, id)
    }

    /// [load-thread] Handles port I/O on [port, port+count). `exclusive`: no other
    /// handler may share the range. The handler runs [vcpu-thread].
    public func registerPIO(port: UInt16, count: UInt16 = 1, priority: Int32 = 0, exclusive: Bool = true,
                            name: String, _ handler: @escaping (PIOExit) throws -> PluginVerdict) throws {
        let box = PIOHandlerBox(handler)
        try register(VMM_EXIT_PIO, base: UInt64(port), length: UInt64(count), priority: priority,
                     exclusive: exclusive, name: name, box: box, handle: PIOHandlerBox.trampoline)
    }

    /// [load-thread] Handles MMIO on [address, address+length).
    public func registerMMIO(address: UInt64, length: UInt64, priority: Int32 = 0, exclusive: Bool = true,
                             name: String, _ handler: @escaping (MMIOExit) throws -> PluginVerdict) throws {
        let box = MMIOHandlerBox(handler)
        try register(VMM_EXIT_MMIO, base: address, length: length, priority: priority,
                     exclusive: exclusive, name: name, box: box, handle: MMIOHandlerBox.trampoline)
    }

    /// [load-thread] Any exit class, with the raw record (for classes without a view).
    public func registerRaw(_ exitClass: vmm_exit_class, base: UInt64, length: UInt64, priority: Int32 = 0,
                            exclusive: Bool = false, name: String,
                            _ handler: @escaping (UnsafeMutablePointer<vmm_exit_t>) throws -> PluginVerdict) throws {
        try register(exitClass, base: base, length: length, priority: priority, exclusive: exclusive, name: name,
                     box: HandlerBox(handler), handle: HandlerBox.trampoline)
    }

    private func register(_ cls: vmm_exit_class, base: UInt64, length: UInt64, priority: Int32, exclusive: Bool,
                          name: String, box: AnyObject, handle: HandlerTrampoline) throws {
        var desc = vmm_handler_desc_t()
        desc.struct_size = UInt32(MemoryLayout<vmm_handler_desc_t>.size)
        desc.exit_class = cls.rawValue
        desc.base = base
        desc.length = length
        desc.priority = priority
        desc.flags = exclusive ? UInt32(VMM_HANDLER_EXCLUSIVE) : 0
        desc.handle = handle
        desc.user = Unmanaged.passUnretained(box).toOpaque()
        var error: UnsafePointer<CChar>?
        let rc = name.withCString { label in
            desc.name = label
            return raw.pointee.register_handler(data, &desc, &error)
        }
        guard rc == 0 else {
            throw VMMPluginError(error.map { String(cString: $0) } ?? "register_handler failed with errno \(-rc)")
        }
        boxes.append(box)
    }
}

typealias HandlerTrampoline = @convention(c) (UnsafeMutableRawPointer?, UnsafeMutablePointer<vmm_exit_t>?) -> vmm_verdict_t

/// A Swift handler behind the C trampoline the host calls.
final class HandlerBox {
    let body: (UnsafeMutablePointer<vmm_exit_t>) throws -> PluginVerdict

    init(_ body: @escaping (UnsafeMutablePointer<vmm_exit_t>) throws -> PluginVerdict) { self.body = body }

    /// [vcpu-thread] Never lets a Swift error reach the host: it becomes FAIL + message.
    static let trampoline: HandlerTrampoline = rawTrampoline

    /// The C verdict of a Swift one (every trampoline's, through `answer`).
    @inline(__always)
    static func verdict(_ v: PluginVerdict, _ record: UnsafeMutablePointer<vmm_exit_t>) -> vmm_verdict_t {
        switch v {
        case .handled: return VMM_HANDLED.rawValue
        case .notMine: return VMM_NOT_MINE.rawValue
        case .backingReplaced: return VMM_BACKING_REPLACED
        case .fail: return failed(record, v)
        }
    }

    /// `.fail`'s message, out of line (as `thrown`): keeping the payload alive across
    /// the call cost every trampoline two saved registers.
    @inline(never)
    static func failed(_ record: UnsafeMutablePointer<vmm_exit_t>, _ v: __owned PluginVerdict) -> vmm_verdict_t {
        guard case let .fail(message) = v else { return VMM_FAIL.rawValue }
        return fail(record, message)
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

/// `HandlerBox.trampoline`, as `pioTrampoline`.
@c(vmmkit_sdk_raw_trampoline)
private func rawTrampoline(_ user: UnsafeMutableRawPointer?, _ record: UnsafeMutablePointer<vmm_exit_t>?) -> vmm_verdict_t {
    answer(user, record, exitClass: nil) { user, record in
        try Unmanaged<HandlerBox>.fromOpaque(user)._withUnsafeGuaranteedRef { try $0.body(record) }
    }
}

/// What every trampoline does around its handler's call: refuses a null pointer and
/// (for a typed handler) a record of another exit class, and turns the handler's answer
/// or error into the host's verdict. Never lets a Swift error reach the host.
@inline(__always)
private func answer(_ user: UnsafeMutableRawPointer?, _ record: UnsafeMutablePointer<vmm_exit_t>?, exitClass: vmm_exit_class?,
                    _ call: (UnsafeMutableRawPointer, UnsafeMutablePointer<vmm_exit_t>) throws -> PluginVerdict) -> vmm_verdict_t {
    guard let user, let record else { return VMM_FAIL.rawValue }
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

/// A port handler behind a trampoline of its own: the handler is called with its view
/// directly, with no closure wrapping it into a raw-record handler (a call layer less,
/// ~11 instructions per exit, measured with callgrind).
final class PIOHandlerBox {
    let body: (PIOExit) throws -> PluginVerdict

    init(_ body: @escaping (PIOExit) throws -> PluginVerdict) { self.body = body }

    /// [vcpu-thread] As `HandlerBox.trampoline`.
    static let trampoline: HandlerTrampoline = pioTrampoline
}

/// `PIOHandlerBox.trampoline`: a C function of its own (a private `@c` symbol, local
/// to the plugin's library) that the host calls with no thunk in between (a closure
/// converted to a C pointer got one: 4 instructions per exit).
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

/// `MMIOHandlerBox.trampoline`, as `pioTrampoline`.
@c(vmmkit_sdk_mmio_trampoline)
private func mmioTrampoline(_ user: UnsafeMutableRawPointer?, _ record: UnsafeMutablePointer<vmm_exit_t>?) -> vmm_verdict_t {
    answer(user, record, exitClass: VMM_EXIT_MMIO) { user, record in
        try Unmanaged<MMIOHandlerBox>.fromOpaque(user)._withUnsafeGuaranteedRef { try $0.body(MMIOExit(record: record)) }
    }
}

/// One strdup'ed message per thread, freed when the thread ends.
final class MessageSlot {
    var text: UnsafeMutablePointer<CChar>?
    deinit { free(text) }

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { if let p = $0 { Unmanaged<MessageSlot>.fromOpaque(p).release() } }
        return key
    }()

    static var current: MessageSlot {
        if let p = pthread_getspecific(key) { return Unmanaged<MessageSlot>.fromOpaque(p).takeUnretainedValue() }
        let slot = MessageSlot()
        pthread_setspecific(key, Unmanaged.passRetained(slot).toOpaque())
        return slot
    }
}
