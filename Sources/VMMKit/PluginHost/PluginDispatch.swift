import CVMMPlugin
import Glibc

/// Wires plugin handlers into the `ExitDispatcher` and marshals each exit into the
/// thread's reused `vmm_exit_t` record and the verdict back. The hot path (PIO, MMIO)
/// allocates nothing: one thread-local lookup, a few stores, an indirect call.
enum PluginDispatch {
    static func wire(_ handler: PluginHandler, instance plugin: PluginInstance) throws(VMMError) {
        let dispatcher = plugin.host.dispatcher
        var h = handler
        h.tag = plugin.host.watchdog.tag(for: h.owner) // names it to the PluginWatchdog
        // Captured: two trivial values and one class reference, so a call retains nothing.
        let fn = h.handle, user = h.user, info = HandlerInfo(owner: h.owner, tag: h.tag)
        // What the run loop's hot path calls instead of the closures below (PluginHotCall).
        let entry = PluginEntry(fn: fn, user: user, tag: h.tag)
        switch h.exitClass {
        case VMM_EXIT_PIO.rawValue:
            try dispatcher.registerPIO(port: UInt16(h.start), count: UInt16(h.end - h.start), priority: h.priority,
                                       exclusive: h.exclusive, owner: h.owner, plugin: entry, info: info) { io, vcpu in
                PluginThreadState.withCurrent { state in
                    let record = state.begin(vcpu, exitClass: VMM_EXIT_PIO.rawValue)
                    record.pointee.pio = vmm_exit_pio_t(
                        port: io.port, size: UInt8(truncatingIfNeeded: io.size), is_write: io.isWrite ? 1 : 0,
                        count: UInt32(truncatingIfNeeded: io.count),
                        data: io.data.baseAddress?.assumingMemoryBound(to: UInt8.self))
                    let what = PluginCallSlot.what(vcpu: vcpu.id, exitClass: VMM_EXIT_PIO.rawValue, isWrite: io.isWrite, size: io.size)
                    return verdict(state.call(fn, user, record, info.tag, what: what, address: UInt64(io.port)), state, info)
                }
            }
        case VMM_EXIT_MMIO.rawValue:
            try dispatcher.registerMMIO(address: h.start, length: h.end - h.start, priority: h.priority,
                                        exclusive: h.exclusive, owner: h.owner, plugin: entry, info: info) { access, vcpu in
                let (isWrite, address, length, data) = (access.isWrite, access.address, access.length, access.data)
                var readBack: UInt64 = 0
                let result = PluginThreadState.withCurrent { state in
                    let record = state.begin(vcpu, exitClass: VMM_EXIT_MMIO.rawValue)
                    record.pointee.mmio.gpa = address
                    record.pointee.mmio.len = UInt32(truncatingIfNeeded: length)
                    record.pointee.mmio.is_write = isWrite ? 1 : 0
                    withUnsafeMutableBytes(of: &record.pointee.mmio.data) {
                        $0.storeBytes(of: isWrite ? data.littleEndian : 0, as: UInt64.self)
                    }
                    let what = PluginCallSlot.what(vcpu: vcpu.id, exitClass: VMM_EXIT_MMIO.rawValue, isWrite: isWrite, size: length)
                    let result = verdict(state.call(fn, user, record, info.tag, what: what, address: address), state, info)
                    readBack = withUnsafeBytes(of: record.pointee.mmio.data) { UInt64(littleEndian: $0.load(as: UInt64.self)) }
                    return result
                }
                if case .handled = result, !isWrite { access.data = readBack }
                return result
            }
        case VMM_EXIT_MSR.rawValue:
            for kind in [VMExitKind.rdmsr, .wrmsr] {
                try dispatcher.register(kind, priority: h.priority, owner: h.owner) { exit, vcpu in
                    let (access, isWrite): (MSRAccess, Bool)
                    switch exit {
                    case let .rdmsr(m): (access, isWrite) = (m, false)
                    case let .wrmsr(m): (access, isWrite) = (m, true)
                    default: return .notMine
                    }
                    guard h.covers(UInt64(access.index)) else { return .notMine }
                    let state = PluginThreadState.current
                    let record = state.begin(vcpu, exitClass: VMM_EXIT_MSR.rawValue)
                    record.pointee.msr = vmm_exit_msr_t(index: access.index, reason: access.reason, data: access.data,
                                                        is_write: isWrite ? 1 : 0, error: 0, reserved: (0, 0, 0, 0, 0, 0))
                    let result = verdict(state.call(fn, user, record, info.tag), state, info)
                    if case .handled = result {
                        var m = access
                        m.data = record.pointee.msr.data
                        m.error = record.pointee.msr.error != 0
                        exit = isWrite ? .wrmsr(m) : .rdmsr(m)
                    }
                    return result
                }
            }
        case VMM_EXIT_MEMORY_FAULT.rawValue:
            plugin.host.memoryFaultHandlers.append(h)
            plugin.host.memoryFaultHandlers.sort { $0.priority > $1.priority }
            // A located fault goes to the handlers whose range holds it; one without an
            // address only to whole-space handlers (length 0), marked as such (ABI 1.2).
            let wholeSpace = h.start == h.end
            try dispatcher.register(.memoryFault, priority: h.priority, owner: h.owner) { exit, vcpu in
                guard case let .memoryFault(f) = exit else { return .notMine }
                if let at = f.location { guard h.covers(at.gpa) else { return .notMine } } else if !wholeSpace { return .notMine }
                let state = PluginThreadState.current
                let record = state.begin(vcpu, exitClass: VMM_EXIT_MEMORY_FAULT.rawValue)
                record.pointee.memory_fault = memoryFaultRecord(f)
                record.pointee.memory_fault_known_flags = MemoryFault.knownFlags
                let answer = state.call(fn, user, record, info.tag)
                if answer == VMM_BACKING_REPLACED { return state.end().map { .fail("\(info.owner): registers could not be written back: \($0)") } ?? .backingReplaced }
                return verdict(answer, state, info)
            }
        case VMM_EXIT_HLT.rawValue:
            try dispatcher.register(.hlt, priority: h.priority, owner: h.owner, plugin: entry, info: info) { _, vcpu in
                PluginThreadState.withCurrent { state in
                    verdict(state.call(fn, user, state.begin(vcpu, exitClass: VMM_EXIT_HLT.rawValue), info.tag), state, info)
                }
            }
        case VMM_EXIT_OTHER.rawValue:
            for (kind, reason) in otherKinds {
                guard h.covers(UInt64(reason)) || kind == .unknown else { continue }
                try dispatcher.register(kind, priority: h.priority, owner: h.owner) { exit, vcpu in
                    let number = if case let .unknown(r) = exit { r } else { reason }
                    guard h.covers(UInt64(number)) else { return .notMine }
                    let state = PluginThreadState.current
                    let record = state.begin(vcpu, exitClass: VMM_EXIT_OTHER.rawValue)
                    record.pointee.other = vmm_exit_other_t(kvm_exit_reason: number, reserved: 0)
                    return verdict(state.call(fn, user, record, info.tag), state, info)
                }
            }
        case VMM_EXIT_ASYNC_PF.rawValue:
            plugin.host.asyncPFHandlers.append(h)
            plugin.host.asyncPFHandlers.sort { $0.priority > $1.priority }
        default:
            throw .invalidArgument("\(h.owner): unknown exit class \(h.exitClass)")
        }
        if h.exitClass != VMM_EXIT_PIO.rawValue, h.exitClass != VMM_EXIT_MMIO.rawValue {
            plugin.host.classRanges.append(ClassRange(exitClass: h.exitClass, start: h.start, end: h.end,
                                                      exclusive: h.exclusive, owner: h.owner))
        }
    }

    /// The C record of a memory fault: an un-annotated one carries no address (ABI 1.2).
    static func memoryFaultRecord(_ f: MemoryFault, access: UInt32 = 0) -> vmm_exit_memory_fault_t {
        var mf = vmm_exit_memory_fault_t()
        mf.gpa = f.location?.gpa ?? VMM_MEMORY_FAULT_NO_GPA
        mf.size = f.location?.size ?? 0
        mf.flags = f.flags
        mf.err_no = f.errno
        mf.access = access
        mf.annotated = f.annotated ? 1 : 0
        return mf
    }

    /// Exits that reach plugins as class OTHER, with their KVM exit reason.
    static let otherKinds: [(VMExitKind, UInt32)] = [
        (.hypercall, 3), (.debug, 4), (.irqWindowOpen, 7), (.shutdown, 8), (.failEntry, 9),
        (.internalError, 17), (.systemEvent, 24), (.unknown, 0),
    ]

    /// Turns the plugin's verdict into the dispatcher's, writing back registers first.
    @inline(__always)
    static func verdict(_ v: vmm_verdict_t, _ state: PluginThreadState, _ info: HandlerInfo) -> ExitVerdict {
        if let error = state.end() { return .fail("\(info.owner): registers could not be written back: \(error)") }
        if v == VMM_HANDLED.rawValue { return .handled }
        if v == VMM_NOT_MINE.rawValue { return .notMine }
        return failure(v, state, info)
    }

    @inline(never)
    static func failure(_ v: vmm_verdict_t, _ state: PluginThreadState, _ info: HandlerInfo) -> ExitVerdict {
        guard v == VMM_FAIL.rawValue else { return .fail("\(info.owner): returned an unknown verdict \(v)") }
        let message = PluginText.message(state.record.pointee.message)
        return .fail("\(info.owner): \(message)")
    }
}

/// What a dispatch closure needs of its handler beyond the C pointers: for diagnostics.
final class HandlerInfo {
    let owner: String
    /// The handler's tag for PluginThreadState.call (the watchdog's key).
    let tag: UInt64
    init(owner: String, tag: UInt64) { self.owner = owner; self.tag = tag }
}
