import CThreadLocal
import CVMMPlugin

/// A plugin's C handler as the frozen tables hold it beside its closure: the run loop's
/// hot path (PIO, MMIO, HLT) fills the thread's `vmm_exit_t` straight from the decoded
/// exit and calls `fn`, with no closure, context or `ExitVerdict` in between. Trivial
/// (no references), so reading it from a borrowed box retains nothing.
struct PluginEntry {
    /// nil: the handler is a closure (not a plugin's).
    let fn: PluginHandleFunction?
    let user: UnsafeMutableRawPointer?
    /// The handler's tag for the watchdog's call slot (`PluginWatchdog.tag(for:)`).
    let tag: UInt64

    static var none: PluginEntry { PluginEntry(fn: nil, user: nil, tag: 0) }
}

/// What a range handler's call came to, for the frozen tables' loop over a segment.
enum RangeStep {
    case handled
    /// VMM_NOT_MINE: the next handler of the segment (priority order).
    case next
    /// A stop or failure, written to the loop's `verdict`.
    case other
}

/// The hot path's plugin calls. Each does what the closure `PluginDispatch.wire`
/// registers does — begin the record, publish the call slot, call, write registers
/// back, turn the verdict — so the closure (used by `ExitDispatcher.dispatch`, traces
/// and observers) and this path behave the same; only the layers differ.
enum PluginHotCall {
    // PIO and MMIO are inlined into the hot path's out-of-line hotPIO / hotMMIO (a call
    // layer less: -28 / -15 instructions per exit, measured); HLT through the kind table
    // stays out of line: inlined into the loop every shape shares it crowds the loop's
    // registers (+11 to +35 per HLT). `hltInline` is for the loop specialised for one
    // plugin HLT handler (`VCPU.hotLoop` with `PluginHalt`), where it crowds nothing.
    @inline(__always)
    static func pio(_ box: Unmanaged<PIOHandlerBox>, _ fn: PluginHandleFunction, _ io: PIOAccess, _ vcpu: VCPU,
                    _ verdict: inout ExitVerdict) -> RangeStep {
        box._withUnsafeGuaranteedRef { box in
            state._withUnsafeGuaranteedRef { $0.hotPIO(box.plugin, fn, box.info, io, vcpu, &verdict) }
        }
    }

    @inline(__always)
    static func mmio(_ box: Unmanaged<MMIOHandlerBox>, _ fn: PluginHandleFunction, _ access: inout MMIOAccess,
                     _ vcpu: VCPU, _ verdict: inout ExitVerdict) -> RangeStep {
        box._withUnsafeGuaranteedRef { box in
            state._withUnsafeGuaranteedRef { $0.hotMMIO(box.plugin, fn, box.info, &access, vcpu, &verdict) }
        }
    }

    /// `hlt` inlined: for the hot loop specialised for one plugin HLT handler
    /// (`VCPU.hotLoop` with `PluginHalt`), where it crowds nothing.
    @inline(__always)
    static func hltInline(_ box: Unmanaged<KindHandlerBox>, _ fn: PluginHandleFunction, _ vcpu: VCPU,
                          _ verdict: inout ExitVerdict) -> RangeStep {
        box._withUnsafeGuaranteedRef { box in
            state._withUnsafeGuaranteedRef { $0.hotHLT(box.plugin, fn, box.info, vcpu, &verdict) }
        }
    }

    @inline(never)
    static func hlt(_ box: Unmanaged<KindHandlerBox>, _ fn: PluginHandleFunction, _ vcpu: VCPU,
                    _ verdict: inout ExitVerdict) -> RangeStep {
        box._withUnsafeGuaranteedRef { box in
            state._withUnsafeGuaranteedRef { $0.hotHLT(box.plugin, fn, box.info, vcpu, &verdict) }
        }
    }

    /// This thread's `PluginThreadState`, to borrow (no retain), created on first use.
    /// Its methods are called through one-call closures: a larger closure given to
    /// `_withUnsafeGuaranteedRef` stays a function of its own with a context to fill.
    @inline(__always)
    private static var state: Unmanaged<PluginThreadState> {
        Unmanaged<PluginThreadState>.fromOpaque(PluginThreadState.currentRaw)
    }
}

extension PluginThreadState {
    @inline(__always)
    func hotPIO(_ e: PluginEntry, _ fn: PluginHandleFunction, _ info: HandlerInfo?, _ io: PIOAccess, _ vcpu: VCPU,
                _ verdict: inout ExitVerdict) -> RangeStep {
        let record = begin(vcpu, exitClass: VMM_EXIT_PIO.rawValue)
        record.pointee.pio = vmm_exit_pio_t(
            port: io.port, size: UInt8(truncatingIfNeeded: io.size), is_write: io.isWrite ? 1 : 0,
            count: UInt32(truncatingIfNeeded: io.count), data: io.data.baseAddress?.assumingMemoryBound(to: UInt8.self))
        let what = PluginCallSlot.what(vcpu: vcpu.id, exitClass: VMM_EXIT_PIO.rawValue, isWrite: io.isWrite, smallSize: io.size)
        return hotStep(call(fn, e.user, record, e.tag, what: what, address: UInt64(io.port)), info, &verdict)
    }

    @inline(__always)
    func hotMMIO(_ e: PluginEntry, _ fn: PluginHandleFunction, _ info: HandlerInfo?, _ access: inout MMIOAccess,
                 _ vcpu: VCPU, _ verdict: inout ExitVerdict) -> RangeStep {
        let isWrite = access.isWrite
        let record = begin(vcpu, exitClass: VMM_EXIT_MMIO.rawValue)
        record.pointee.mmio.gpa = access.address
        record.pointee.mmio.len = UInt32(truncatingIfNeeded: access.length)
        record.pointee.mmio.is_write = isWrite ? 1 : 0
        let value = isWrite ? access.data.littleEndian : 0
        withUnsafeMutableBytes(of: &record.pointee.mmio.data) { $0.storeBytes(of: value, as: UInt64.self) }
        let what = PluginCallSlot.what(vcpu: vcpu.id, exitClass: VMM_EXIT_MMIO.rawValue, isWrite: isWrite, smallSize: access.length)
        let answer = hotStep(call(fn, e.user, record, e.tag, what: what, address: access.address), info, &verdict)
        // Read back whatever the direction: after a handled write the hot path never
        // reads `access.data` again (hotMMIO completes reads only), and one test fewer.
        if case .handled = answer {
            access.data = withUnsafeBytes(of: record.pointee.mmio.data) { UInt64(littleEndian: $0.load(as: UInt64.self)) }
        }
        return answer
    }

    @inline(__always)
    func hotHLT(_ e: PluginEntry, _ fn: PluginHandleFunction, _ info: HandlerInfo?, _ vcpu: VCPU,
                _ verdict: inout ExitVerdict) -> RangeStep {
        let record = begin(vcpu, exitClass: VMM_EXIT_HLT.rawValue)
        let what = PluginCallSlot.what(vcpu: vcpu.id, exitClass: VMM_EXIT_HLT.rawValue, isWrite: false, size: 0)
        return hotStep(call(fn, e.user, record, e.tag, what: what, address: 0), info, &verdict)
    }

    /// `PluginDispatch.verdict` without building an `ExitVerdict` for the common answers.
    @inline(__always)
    private func hotStep(_ v: vmm_verdict_t, _ info: HandlerInfo?, _ verdict: inout ExitVerdict) -> RangeStep {
        if anyDirty { return slowStep(v, info, &verdict) }
        vcpu = nil
        if v == VMM_HANDLED.rawValue { return .handled }
        if v == VMM_NOT_MINE.rawValue { return .next }
        return slowStep(v, info, &verdict)
    }

    /// Registers to write back, or a verdict other than HANDLED / NOT_MINE.
    @inline(never)
    private func slowStep(_ v: vmm_verdict_t, _ info: HandlerInfo?, _ verdict: inout ExitVerdict) -> RangeStep {
        switch PluginDispatch.verdict(v, self, info ?? HandlerInfo(owner: "plugin", tag: 0)) {
        case .handled: return .handled
        case .notMine: return .next
        case let other: verdict = other; return .other
        }
    }
}
