import CKVM
import CThreadLocal
import CVMMPlugin
import Glibc

/// What the plugin host keeps per vCPU thread: the one `vmm_exit_t` record every
/// plugin handler on this thread receives (reused, so dispatch allocates nothing),
/// which vCPU is in an exit right now, and a lazy cache of its registers so that a
/// handler reading several registers costs one KVM_GET_REGS, and writing them one
/// KVM_SET_REGS when it returns.
///
/// A vCPU runs on exactly one thread, so per thread is per vCPU. Created on the first
/// plugin exit of a thread and freed when the thread ends (pthread key destructor).
final class PluginThreadState {
    /// `vcpu` and the cache flags are written on every plugin exit: lines of their own
    /// (CacheLinePad).
    private let padBefore = CacheLinePad()
    let record: UnsafeMutablePointer<vmm_exit_t>
    /// The vCPU in an exit on this thread, while a plugin handler runs; else nil.
    unowned(unsafe) var vcpu: VCPU?
    var regs = kvm_regs()
    var sregs = kvm_sregs()
    /// The register cache's four flags in one word: the hot path tests all four with one
    /// compare. Zero outside a call, so `begin` clears nothing: every call ends in
    /// `end()`, which clears them, or on the hot path, which goes through `end()` unless
    /// it found them zero.
    private var cacheFlags: UInt32 = 0
    private static let regsLoadedBit: UInt32 = 1, regsDirtyBit: UInt32 = 2
    private static let sregsLoadedBit: UInt32 = 4, sregsDirtyBit: UInt32 = 8
    var regsLoaded: Bool { get { flag(Self.regsLoadedBit) } set { setFlag(Self.regsLoadedBit, newValue) } }
    var regsDirty: Bool { get { flag(Self.regsDirtyBit) } set { setFlag(Self.regsDirtyBit, newValue) } }
    var sregsLoaded: Bool { get { flag(Self.sregsLoadedBit) } set { setFlag(Self.sregsLoadedBit, newValue) } }
    var sregsDirty: Bool { get { flag(Self.sregsDirtyBit) } set { setFlag(Self.sregsDirtyBit, newValue) } }
    @inline(__always) private func flag(_ bit: UInt32) -> Bool { cacheFlags & bit != 0 }
    @inline(__always) private func setFlag(_ bit: UInt32, _ on: Bool) { cacheFlags = on ? cacheFlags | bit : cacheFlags & ~bit }
    /// Registers loaded or changed during the call: it must end through `end()`.
    var anyCached: Bool { cacheFlags != 0 }
    /// The message of the last failed async_pf event, kept alive for its raiser.
    var lastMessage: UnsafeMutablePointer<CChar>?
    /// async_pf raises in progress on this thread (a handler raising from inside one).
    var raiseDepth = 0
    /// While `PluginHost.fetchPage` asks a plugin for a page: where its write_guest goes.
    var staging: PageStaging?
    /// Set on the thread that delivers demand-paged memory (a fault router): whether a
    /// guest-physical range is there to touch (`PluginHost.deliversPages(isPresent:)`).
    var deliveredRange: ((UInt64, Int) -> Bool)?
    /// While a state save or restore runs on this thread: the last line the plugin
    /// logged at error level, which names why it refused (`PluginHost.stateCall`).
    var stateRefusal: String?
    var capturesStateRefusal = false
    /// The handler call in progress, for the watchdog (PluginCallSlot.swift).
    let slot = PluginCallSlot()
    private let padAfter = CacheLinePad()

    private init() {
        // Written on every plugin exit: lines of its own (CacheLinePad).
        record = UnsafeMutableBufferPointer<vmm_exit_t>.allocateIsolated(capacity: 1).baseAddress!
        record.initialize(to: vmm_exit_t())
    }

    deinit {
        record.deallocate()
        free(lastMessage)
    }

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { pointer in
            vmmkit_thread_plugin_state_set(nil)
            if let pointer { Unmanaged<PluginThreadState>.fromOpaque(pointer).release() }
        }
        return key
    }()

    /// This thread's state, created on first use.
    static var current: PluginThreadState {
        Unmanaged<PluginThreadState>.fromOpaque(currentRaw).takeUnretainedValue()
    }

    /// Runs `body` with this thread's state without retaining it: the hot path of
    /// every plugin exit, where a retain/release pair would cost more than the rest.
    @inline(__always)
    static func withCurrent<R>(_ body: (PluginThreadState) -> R) -> R {
        Unmanaged<PluginThreadState>.fromOpaque(currentRaw)._withUnsafeGuaranteedRef(body)
    }

    /// The `__thread` slot finds it (one load); the pthread key owns it, so its
    /// destructor frees it when the thread ends.
    @inline(__always)
    static var currentRaw: UnsafeMutableRawPointer {
        if let raw = vmmkit_thread_plugin_state_get() { return raw }
        return create()
    }

    @inline(never)
    private static func create() -> UnsafeMutableRawPointer {
        let raw = Unmanaged.passRetained(PluginThreadState()).toOpaque()
        pthread_setspecific(key, raw)
        vmmkit_thread_plugin_state_set(raw)
        return raw
    }

    /// This thread's state if it has one (never creates it).
    static var existing: PluginThreadState? {
        vmmkit_thread_plugin_state_get().map { Unmanaged<PluginThreadState>.fromOpaque($0).takeUnretainedValue() }
    }

    /// The state of the thread if it is in an exit of vCPU `id` right now.
    static func active(vcpuID id: UInt32) -> PluginThreadState? {
        guard let raw = vmmkit_thread_plugin_state_get() else { return nil }
        let state = Unmanaged<PluginThreadState>.fromOpaque(raw).takeUnretainedValue()
        guard let vcpu = state.vcpu, vcpu.id == id else { return nil }
        return state
    }

    /// Prepares the record for one handler call on `vcpu`.
    @inline(__always)
    func begin(_ vcpu: VCPU, exitClass: UInt32) -> UnsafeMutablePointer<vmm_exit_t> {
        assert(cacheFlags == 0, "a plugin call began with the register cache of another")
        self.vcpu = vcpu
        record.pointee.struct_size = UInt32(MemoryLayout<vmm_exit_t>.size)
        record.pointee.vcpu_id = vcpu.id
        record.pointee.exit_class = exitClass
        record.pointee.message = nil
        return record
    }

    /// `begin` with the record's first 16 bytes as two words: struct_size and vcpu_id
    /// as one value computed once per hot loop (`PluginHalt`), exit_class with the zero
    /// `reserved` as a constant (1 instruction fewer a HLT than four fields, callgrind).
    @inline(__always)
    func begin(_ vcpu: VCPU, header: UInt64, exitClass: UInt32) -> UnsafeMutablePointer<vmm_exit_t> {
        assert(cacheFlags == 0, "a plugin call began with the register cache of another")
        self.vcpu = vcpu
        let raw = UnsafeMutableRawPointer(record)
        raw.storeBytes(of: header, as: UInt64.self)
        raw.storeBytes(of: UInt64(exitClass), toByteOffset: 8, as: UInt64.self)
        record.pointee.message = nil
        return record
    }

    /// struct_size and vcpu_id as the record's first 8 bytes hold them (`begin`).
    static func header(vcpu id: UInt32) -> UInt64 {
        var h = vmm_exit_t()
        h.struct_size = UInt32(MemoryLayout<vmm_exit_t>.size)
        h.vcpu_id = id
        return withUnsafeBytes(of: &h) { $0.load(as: UInt64.self) }
    }

    /// Ends the handler call: writes back registers the handler changed, and forgets the
    /// cache (a failed write-back is reported once, not retried by the next call).
    @inline(__always)
    func end() -> VMMError? {
        defer { vcpu = nil; cacheFlags = 0 }
        guard regsDirty || sregsDirty, let vcpu else { return nil }
        return flush(vcpu)
    }

    private func flush(_ vcpu: VCPU) -> VMMError? {
        do {
            if regsDirty { regsDirty = false; try vcpu.setRegisters(regs) }
            if sregsDirty { sregsDirty = false; try vcpu.setSpecialRegisters(sregs) }
            return nil
        } catch {
            return error
        }
    }

    func loadRegs() throws(VMMError) {
        if !regsLoaded, let vcpu { regs = try vcpu.registers(); regsLoaded = true }
    }

    func loadSregs() throws(VMMError) {
        if !sregsLoaded, let vcpu { sregs = try vcpu.specialRegisters(); sregsLoaded = true }
    }

    /// Seeds the cache with registers the caller already read (typed hypercalls).
    func preload(_ registers: kvm_regs) {
        regs = registers
        regsLoaded = true
    }
}
