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
    /// `exitCode` becomes its result. A non-empty `reason` is reported with the plugin's
    /// id; a `vcpu` that names no vCPU is refused (nothing stops, the host logs why).
    public func requestStop(vcpu: Int32 = -1, exitCode: Int32, reason: String) {
        raw.pointee.request_stop(data, vcpu, exitCode, reason)
    }

    /// [any-thread] A host extension table by id (`VMM_EXT_*`), or nil.
    public func hostExtension(_ id: String) -> UnsafeRawPointer? {
        raw.pointee.get_extension(data, id)
    }

    // Each `register…` comes twice: a handler that cannot throw (a closure with no `try`
    // or `throw` picks that overload) is called by a trampoline with no error to test
    // and no register to save for it, 6 instructions an exit fewer (callgrind).

    /// [load-thread] Handles port I/O on [port, port+count). `exclusive`: no other
    /// handler may share the range. The handler runs [vcpu-thread].
    public func registerPIO(port: UInt16, count: UInt16 = 1, priority: Int32 = 0, exclusive: Bool = true,
                            name: String, _ handler: @escaping (PIOExit) throws -> PluginVerdict) throws {
        try register(VMM_EXIT_PIO, base: UInt64(port), length: UInt64(count), priority: priority,
                     exclusive: exclusive, name: name, box: PIOHandlerBox(handler), handle: PIOHandlerBox.trampoline)
    }

    /// [load-thread] `registerPIO` for a handler that cannot throw.
    public func registerPIO(port: UInt16, count: UInt16 = 1, priority: Int32 = 0, exclusive: Bool = true,
                            name: String, _ handler: @escaping (PIOExit) -> PluginVerdict) throws {
        try register(VMM_EXIT_PIO, base: UInt64(port), length: UInt64(count), priority: priority,
                     exclusive: exclusive, name: name, box: PlainPIOHandlerBox(handler), handle: PlainPIOHandlerBox.trampoline)
    }

    /// [load-thread] Handles MMIO on [address, address+length).
    public func registerMMIO(address: UInt64, length: UInt64, priority: Int32 = 0, exclusive: Bool = true,
                             name: String, _ handler: @escaping (MMIOExit) throws -> PluginVerdict) throws {
        try register(VMM_EXIT_MMIO, base: address, length: length, priority: priority,
                     exclusive: exclusive, name: name, box: MMIOHandlerBox(handler), handle: MMIOHandlerBox.trampoline)
    }

    /// [load-thread] `registerMMIO` for a handler that cannot throw.
    public func registerMMIO(address: UInt64, length: UInt64, priority: Int32 = 0, exclusive: Bool = true,
                             name: String, _ handler: @escaping (MMIOExit) -> PluginVerdict) throws {
        try register(VMM_EXIT_MMIO, base: address, length: length, priority: priority,
                     exclusive: exclusive, name: name, box: PlainMMIOHandlerBox(handler), handle: PlainMMIOHandlerBox.trampoline)
    }

    /// [load-thread] Any exit class, with the raw record (for classes without a view).
    public func registerRaw(_ exitClass: vmm_exit_class, base: UInt64, length: UInt64, priority: Int32 = 0,
                            exclusive: Bool = false, name: String,
                            _ handler: @escaping (UnsafeMutablePointer<vmm_exit_t>) throws -> PluginVerdict) throws {
        try register(exitClass, base: base, length: length, priority: priority, exclusive: exclusive, name: name,
                     box: HandlerBox(handler), handle: HandlerBox.trampoline)
    }

    /// [load-thread] `registerRaw` for a handler that cannot throw.
    public func registerRaw(_ exitClass: vmm_exit_class, base: UInt64, length: UInt64, priority: Int32 = 0,
                            exclusive: Bool = false, name: String,
                            _ handler: @escaping (UnsafeMutablePointer<vmm_exit_t>) -> PluginVerdict) throws {
        try register(exitClass, base: base, length: length, priority: priority, exclusive: exclusive, name: name,
                     box: PlainHandlerBox(handler), handle: PlainHandlerBox.trampoline)
    }

    /// [load-thread] A C-convention function as the handler, which the host calls
    /// directly: no trampoline, no closure, so a hot handler in a Swift plugin costs
    /// about what a C plugin's does (a HLT's user-space path: 89 instructions, against
    /// 113 through a closure and 84 for a C handler; README). The function gets `user`
    /// unchanged and the raw record, and answers the C verdict itself: it must not
    /// throw or trap, and on VMM_FAIL it may point `message` at text that lives until
    /// the next call on its thread. What `user` points to is the plugin's to keep alive
    /// until `shutdown`. Write it as `@c func name(_ user: UnsafeMutableRawPointer?,
    /// _ record: UnsafeMutablePointer<vmm_exit_t>?) -> vmm_verdict_t`.
    public func registerFunction(_ exitClass: vmm_exit_class, base: UInt64, length: UInt64, priority: Int32 = 0,
                                 exclusive: Bool = false, name: String, user: UnsafeMutableRawPointer?,
                                 _ function: PluginHandlerFunction) throws {
        try register(exitClass, base: base, length: length, priority: priority, exclusive: exclusive, name: name,
                     user: user, keep: nil, handle: function)
    }

    private func register(_ cls: vmm_exit_class, base: UInt64, length: UInt64, priority: Int32, exclusive: Bool,
                          name: String, box: AnyObject, handle: HandlerTrampoline) throws {
        try register(cls, base: base, length: length, priority: priority, exclusive: exclusive, name: name,
                     user: Unmanaged.passUnretained(box).toOpaque(), keep: box, handle: handle)
    }

    /// `keep`: what `user` points to, held until the instance is released.
    private func register(_ cls: vmm_exit_class, base: UInt64, length: UInt64, priority: Int32, exclusive: Bool,
                          name: String, user: UnsafeMutableRawPointer?, keep: AnyObject?, handle: HandlerTrampoline) throws {
        var desc = vmm_handler_desc_t()
        desc.struct_size = UInt32(MemoryLayout<vmm_handler_desc_t>.size)
        desc.exit_class = cls.rawValue
        desc.base = base
        desc.length = length
        desc.priority = priority
        desc.flags = exclusive ? UInt32(VMM_HANDLER_EXCLUSIVE) : 0
        desc.handle = handle
        desc.user = user
        var error: UnsafePointer<CChar>?
        let rc = name.withCString { label in
            desc.name = label
            return raw.pointee.register_handler(data, &desc, &error)
        }
        guard rc == 0 else {
            throw VMMPluginError(error.map { String(cString: $0) } ?? "register_handler failed with errno \(-rc)")
        }
        if let keep { boxes.append(keep) }
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
