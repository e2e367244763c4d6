import CFFI
import CKVM
import CVMMPlugin
import Glibc

/// A hypercall handler whose C signature is declared at run time ("u64(u64,ptr)") and
/// called through libffi. The `ffi_cif` is prepared once, at registration; per call the
/// host reads the declared arguments from the guest registers (RDI, RSI, RDX, R10, R8,
/// R9), calls the handler with `ffi_call` and writes the result to RAX.
///
/// Guest convention (vmcall never returns from KVM_RUN on every host, so it is not
/// used): number in EAX, then `out %eax, $VMM_HYPERCALL_PORT` (0xe4).
final class TypedHypercall: @unchecked Sendable {
    enum ArgType: Int32 {
        case void = 0, i8, i16, i32, i64, u8, u16, u32, u64, ptr

        static let names: [String: ArgType] = [
            "void": .void, "i8": .i8, "i16": .i16, "i32": .i32, "i64": .i64,
            "u8": .u8, "u16": .u16, "u32": .u32, "u64": .u64, "ptr": .ptr,
        ]

        /// The 64-bit register value of a result of this type (sign- or zero-extended).
        func extend(_ raw: UInt64) -> UInt64 {
            switch self {
            case .void: 0
            case .i8: UInt64(bitPattern: Int64(Int8(truncatingIfNeeded: raw)))
            case .i16: UInt64(bitPattern: Int64(Int16(truncatingIfNeeded: raw)))
            case .i32: UInt64(bitPattern: Int64(Int32(truncatingIfNeeded: raw)))
            case .u8: raw & 0xff
            case .u16: raw & 0xffff
            case .u32: raw & 0xffff_ffff
            case .i64, .u64, .ptr: raw
            }
        }
    }

    let number: UInt32
    let signature: String
    let result: ArgType
    let args: [ArgType]
    let fn: @convention(c) () -> Void
    let user: UnsafeMutableRawPointer?
    let owner: String
    /// The watchdog's tag for this function's calls (`PluginWatchdog.tag(for:)`), set when wired.
    var tag: UInt64 = 0
    let cif: UnsafeMutablePointer<ffi_cif>
    /// The ffi_type* of (user, args...): must outlive the cif.
    let types: UnsafeMutablePointer<UnsafeMutablePointer<ffi_type>?>

    init(number: UInt32, signature: String, result: ArgType, args: [ArgType], fn: @escaping @convention(c) () -> Void,
         user: UnsafeMutableRawPointer?, owner: String) throws(PluginError) {
        (self.number, self.signature, self.result, self.args, self.fn, self.user, self.owner) =
            (number, signature, result, args, fn, user, owner)
        cif = .allocate(capacity: 1)
        types = .allocate(capacity: args.count + 1)
        types[0] = cffi_type(ArgType.ptr.rawValue)
        for (i, a) in args.enumerated() { types[i + 1] = cffi_type(a.rawValue) }
        guard cffi_prep(cif, UInt32(args.count + 1), cffi_type(result.rawValue), types) == 0 else {
            throw PluginError(plugin: owner, "libffi refused hypercall signature '\(signature)'")
        }
    }

    deinit {
        cif.deallocate()
        types.deallocate()
    }

    /// Parses "RET(ARG,...)"; the error says what is wrong and where.
    static func parse(_ text: String) -> Result<(ArgType, [ArgType]), PluginError> {
        func fail(_ why: String) -> Result<(ArgType, [ArgType]), PluginError> {
            .failure(PluginError(plugin: "", "bad hypercall signature '\(text)': \(why); expected RET(ARG,...) with "
                + "RET void, i8..i64, u8..u64 or ptr and 0 to 6 ARGs of i8..i64, u8..u64 or ptr"))
        }
        let compact = String(text.filter { $0 != " " && $0 != "\t" })
        guard let open = compact.firstIndex(of: "("), compact.last == ")" else { return fail("no '(...)' argument list") }
        let retName = String(compact[..<open])
        guard let ret = ArgType.names[retName] else { return fail("unknown return type '\(retName)'") }
        let inner = compact[compact.index(after: open)..<compact.index(before: compact.endIndex)]
        var args: [ArgType] = []
        if !inner.isEmpty && inner != "void" {
            for (i, part) in inner.split(separator: ",", omittingEmptySubsequences: false).enumerated() {
                guard let t = ArgType.names[String(part)], t != .void else {
                    return fail("unknown type '\(part)' for argument \(i + 1)")
                }
                args.append(t)
            }
        }
        guard args.count <= 6 else { return fail("\(args.count) arguments (at most 6 fit the registers)") }
        return .success((ret, args))
    }

    /// register_hypercall: parse, prepare the cif, stage it (wired if init succeeds).
    static func register(_ plugin: PluginInstance, number: UInt32, signature: UnsafePointer<CChar>?,
                         fn: (@convention(c) () -> Void)?, user: UnsafeMutableRawPointer?,
                         errorOut: UnsafeMutablePointer<UnsafePointer<CChar>?>?) -> Int32 {
        let owner = "\(plugin.library.id) (\(plugin.library.path))"
        guard plugin.onLoadThread else {
            plugin.setError("\(owner): register_hypercall is only allowed during init", errorOut); return -EPERM
        }
        guard let signature, let fn else {
            plugin.setError("\(owner): register_hypercall needs a signature and a function", errorOut); return -EINVAL
        }
        let text = PluginText.read(signature)
        let parsed: (ArgType, [ArgType])
        switch parse(text) {
        case let .success(p): parsed = p
        case let .failure(e):
            plugin.setError("\(owner): hypercall \(number): \(e.message)", errorOut); return -EINVAL
        }
        if let taken = plugin.host.hypercalls[number] ?? plugin.stagedHypercalls.first(where: { $0.number == number }) {
            plugin.setError("\(owner): hypercall \(number) is already registered by \(taken.owner)", errorOut)
            return -EEXIST
        }
        if !plugin.host.hypercallPortInstalled && plugin.stagedHypercalls.isEmpty {
            // The port is claimed when this plugin's handlers are wired: check it now,
            // against another plugin's doorbell too (the kernel would take every call).
            let port = UInt64(VMM_HYPERCALL_PORT)
            if let clash = PluginRegistration.doorbellClash(plugin, .pio, port, port + 1, portOwner) {
                plugin.setError("\(owner): hypercall \(number) needs the hypercall port: \(clash)", errorOut)
                return -EEXIST
            }
            do {
                try plugin.dryPIO.insert(start: UInt64(VMM_HYPERCALL_PORT), length: 1, priority: 0, exclusive: true,
                                         owner: portOwner, unit: "port", handler: { _, _ in .notMine })
            } catch {
                plugin.setError("\(owner): hypercall \(number) needs the hypercall port: \(error)", errorOut)
                return -EEXIST
            }
        }
        do {
            let call = try TypedHypercall(number: number, signature: text, result: parsed.0, args: parsed.1, fn: fn,
                                          user: user, owner: owner)
            plugin.stagedHypercalls.append(call)
            return 0
        } catch {
            plugin.setError(error.description, errorOut); return -EINVAL
        }
    }

    static let portOwner = "VMMKit typed hypercalls"

    /// Claims the hypercall port in the dispatcher once per host.
    static func installPort(_ host: PluginHost) throws(VMMError) {
        guard !host.hypercallPortInstalled else { return }
        try host.dispatcher.registerPIO(port: UInt16(VMM_HYPERCALL_PORT), owner: portOwner) {
            [unowned host] io, vcpu in
            guard io.isWrite, io.size == 4 else { return .notMine }
            return dispatch(host, number: io.value, vcpu: vcpu)
        }
        host.hypercallPortInstalled = true
    }

    static func dispatch(_ host: PluginHost, number: UInt32, vcpu: VCPU) -> ExitVerdict {
        let state = PluginThreadState.current
        _ = state.begin(vcpu, exitClass: VMM_EXIT_PIO.rawValue)
        do { try state.loadRegs() } catch { _ = state.end(); return .fail("typed hypercall \(number): \(error)") }
        if let call = host.hypercalls[number] {
            // Watched as a handler is: a function that never returns is reported by name.
            let what = PluginCallSlot.what(vcpu: vcpu.id, exitClass: PluginCallSlot.hypercallClass, isWrite: true, size: 4)
            let regs = state.regs
            state.regs.rax = state.publishing(tag: call.tag, what: what, address: UInt64(number)) {
                call.invoke(regs, memory: vcpu.memory)
            }
        } else {
            state.regs.rax = UInt64(bitPattern: Int64(-ENOSYS))
        }
        state.regsDirty = true
        if let error = state.end() { return .fail("typed hypercall \(number): cannot write RAX: \(error)") }
        return .handled
    }

    /// One call: arguments from the registers, result extended to 64 bits. No heap use.
    func invoke(_ r: kvm_regs, memory: GuestMemory) -> UInt64 {
        // A tuple, not an array: no heap allocation per call.
        var registers = (r.rdi, r.rsi, r.rdx, r.r10, r.r8, r.r9)
        return withUnsafeTemporaryAllocation(of: UInt64.self, capacity: 8) { slots in
            withUnsafeTemporaryAllocation(of: UnsafeMutableRawPointer?.self, capacity: 7) { values in
                slots[0] = UInt64(UInt(bitPattern: user))
                values[0] = UnsafeMutableRawPointer(slots.baseAddress! + 0)
                for (i, type) in args.enumerated() {
                    var value = withUnsafeBytes(of: &registers) { $0.load(fromByteOffset: i * 8, as: UInt64.self) }
                    if type == .ptr {
                        value = (try? memory.hostPointer(value, length: 1)).map { UInt64(UInt(bitPattern: $0)) } ?? 0
                    }
                    // Little endian: a narrower argument is the low bytes of its slot.
                    slots[i + 1] = value
                    values[i + 1] = UnsafeMutableRawPointer(slots.baseAddress! + i + 1)
                }
                slots[7] = 0
                ffi_call(cif, fn, slots.baseAddress! + 7, values.baseAddress!)
                return result.extend(slots[7])
            }
        }
    }
}
