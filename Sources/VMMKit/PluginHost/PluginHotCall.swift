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
    // registers (+11 to +35 per HLT). The loop specialised for one plugin HLT handler
    // (`VCPU.hotLoop` with `PluginHalt`) has its own, `PluginThreadState.hotHLT(_:_:_:)`.
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
    static var state: Unmanaged<PluginThreadState> {
        Unmanaged<PluginThreadState>.fromOpaque(PluginThreadState.currentRaw)
    }
}

/// The one HLT handler, a plugin's (`FrozenTables.soleHalt`), called directly.
struct PluginHalt: HaltDispatch {
    // Read once per run of the hot loop, on the vCPU's thread: the handler, this thread's
    // plugin state and the call's description are the same for the whole loop. Read from
    // the box and the thread at each HLT, they cost 15 more instructions (callgrind).
    // Six words at most: with a seventh the struct was passed by address and its words
    // loaded at each HLT, the box (for the slow path only: `hot.soleHalt`) among them.
    let fn: PluginHandleFunction
    let user: UnsafeMutableRawPointer?
    let tag: UInt64
    /// The watchdog's description of a HLT call on this vCPU (`PluginCallSlot.what`).
    let what: UInt64
    /// The plugin record's first 8 bytes on this vCPU (`PluginThreadState.header`).
    let header: UInt64
    let state: Unmanaged<PluginThreadState>

    /// nil unless `box` (the tables' one HLT handler) is a plugin's.
    init?(_ box: Unmanaged<KindHandlerBox>, vcpu: VCPU) {
        let entry = box._withUnsafeGuaranteedRef { $0.plugin }
        guard let fn = entry.fn else { return nil }
        self.fn = fn
        user = entry.user
        tag = entry.tag
        what = PluginCallSlot.what(vcpu: vcpu.id, exitClass: VMM_EXIT_HLT.rawValue, isWrite: false, size: 0)
        header = PluginThreadState.header(vcpu: vcpu.id)
        state = PluginHotCall.state
    }

    @inline(__always)
    func dispatch(_ hot: Unmanaged<FrozenTables>, _ exit: inout VMExit, _ vcpu: VCPU, _ verdict: inout ExitVerdict) -> FrozenTables.RangeAnswer {
        FrozenTables.RangeAnswer(state._withUnsafeGuaranteedRef { $0.hotHLT(self, hot, vcpu, &verdict) }) // NOT_MINE: unclaimed
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
        return hotStep(outermostCall(fn, e.user, record, e.tag, what: what, address: UInt64(io.port)), info, &verdict)
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
        let answer = hotStep(outermostCall(fn, e.user, record, e.tag, what: what, address: access.address), info, &verdict)
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
        return hotStep(outermostCall(fn, e.user, record, e.tag, what: what, address: 0), info, &verdict)
    }

    /// `hotHLT` for the hot loop specialised for one plugin HLT handler: everything the
    /// call needs but the record was read once per run of the loop (`PluginHalt`), and
    /// the handler's info is read only on the slow path. Its tail is `hotStep`'s, written
    /// out: `hotStep` with the info as an autoclosure cost this HLT 1 more instruction.
    @inline(__always)
    func hotHLT(_ h: PluginHalt, _ hot: Unmanaged<FrozenTables>, _ vcpu: VCPU, _ verdict: inout ExitVerdict) -> RangeStep {
        let record = begin(vcpu, header: h.header, exitClass: VMM_EXIT_HLT.rawValue)
        let v = outermostCall(h.fn, h.user, record, h.tag, what: h.what)
        if anyCached { return slowStep(v, hot, &verdict) }
        self.vcpu = nil
        if v == VMM_HANDLED.rawValue { return .handled }
        if v == VMM_NOT_MINE.rawValue { return .next }
        return slowStep(v, hot, &verdict)
    }

    /// The slow path of the tables' one HLT handler (`FrozenTables.soleHalt`).
    @inline(never)
    private func slowStep(_ v: vmm_verdict_t, _ hot: Unmanaged<FrozenTables>, _ verdict: inout ExitVerdict) -> RangeStep {
        let info = hot._withUnsafeGuaranteedRef { $0.soleHalt }?._withUnsafeGuaranteedRef { $0.info }
        return slowStep(v, info, &verdict)
    }

    /// `PluginDispatch.verdict` without building an `ExitVerdict` for the common answers.
    @inline(__always)
    private func hotStep(_ v: vmm_verdict_t, _ info: HandlerInfo?, _ verdict: inout ExitVerdict) -> RangeStep {
        if anyCached { return slowStep(v, info, &verdict) }
        vcpu = nil
        if v == VMM_HANDLED.rawValue { return .handled }
        if v == VMM_NOT_MINE.rawValue { return .next }
        return slowStep(v, info, &verdict)
    }

    /// Registers the call loaded or changed (`end()` writes back and forgets them), or a
    /// verdict other than HANDLED / NOT_MINE.
    @inline(never)
    private func slowStep(_ v: vmm_verdict_t, _ info: HandlerInfo?, _ verdict: inout ExitVerdict) -> RangeStep {
        switch PluginDispatch.verdict(v, self, info ?? HandlerInfo(owner: "plugin", tag: 0)) {
        case .handled: return .handled
        case .notMine: return .next
        case let other: verdict = other; return .other
        }
    }
}
