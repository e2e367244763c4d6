import CVMMPlugin
import Glibc

/// One plugin's handler, as its descriptor gave it; `owner` names it in diagnostics.
/// Sendable: immutable, and its `user` pointer is the plugin's to make safe on the
/// threads the header says its handlers are called on.
struct PluginHandler: @unchecked Sendable {
    let exitClass: UInt32
    let start: UInt64
    let end: UInt64 // exclusive; start == end == 0 means "everything"
    let priority: Int32
    let exclusive: Bool
    let handle: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutablePointer<vmm_exit_t>?) -> vmm_verdict_t
    let user: UnsafeMutableRawPointer?
    let owner: String
    /// VMM_HANDLER_ZERO_FILL (ABI 1.2): a memory-fault handler that only writes zeros.
    var zeroFill = false
    /// VMM_HANDLER_ANY_THREAD (ABI 1.2): a memory-fault handler callable on any thread.
    var anyThread = false
    /// Set when wired: identifies the handler to the PluginWatchdog.
    var tag: UInt64 = 0

    var summary: String {
        let cls = ["invalid", "pio", "mmio", "msr", "memory_fault", "hlt", "other", "async_pf"]
        let name = Int(exitClass) < cls.count ? cls[Int(exitClass)] : "class \(exitClass)"
        let range = end > start ? " [\(hex(start))..<\(hex(end))]" : ""
        return "\(name)\(range) priority \(priority)\(exclusive ? " exclusive" : "")\(zeroFill ? " zero-fill" : "")\(anyThread ? " any-thread" : "")"
    }

    @inline(__always) func covers(_ address: UInt64) -> Bool {
        start == end || (start <= address && address < end)
    }
}

/// A range claimed by a handler of a class the dispatcher keeps no range table for.
struct ClassRange {
    let exitClass: UInt32
    let start: UInt64
    let end: UInt64
    let exclusive: Bool
    let owner: String
}

/// One initialised plugin: its host table, what it registered, its instance pointer.
///
/// Registrations made during `init` are staged and checked against the dispatcher
/// (and each other) as they come, then wired in only if `init` succeeds, so a failed
/// `init` leaves nothing behind.
final class PluginInstance {
    let library: PluginLibrary
    unowned let host: PluginHost
    /// The host table and host_data the plugin holds; outlives this instance.
    private var handle: PluginHandle!
    var table: UnsafeMutablePointer<vmm_host_t> { handle.table }
    /// The thread running init (register_* calls from any other thread are refused).
    private var loadThread = pthread_t()
    private(set) var instance: UnsafeMutableRawPointer?
    let log: @Sendable (PluginLogLevel, String, String) -> Void
    /// `host.stopHandler` as it was at load (PluginStop.swift).
    let reportStop: @Sendable (PluginStopRequest) -> Void
    /// "id (path)", the prefix of every diagnostic about this plugin.
    let name: String

    // Staging, valid during init only.
    var initializing = false
    var staged: [PluginHandler] = []
    /// One line per handler wired at init, for listings (`vmm plugins`).
    private(set) var handlerSummaries: [String] = []
    var stagedHypercalls: [TypedHypercall] = []
    /// What a load-time service changed in the VM at once (the MSR filter, CPUID bits),
    /// each with how to put it back: run newest first if `init` fails, so a refused
    /// plugin leaves nothing behind, as its handlers are never wired.
    var undoIfInitFails: [() -> Void] = []
    /// request_stop calls made by init: applied once it succeeded.
    var stopsFromInit: [PluginStopRequest] = []
    var dryPIO = AddressRangeTable<PIOHandlerBox>()
    var dryMMIO = AddressRangeTable<MMIOHandlerBox>()
    /// System calls its handlers need beyond the vCPU seccomp list (seccomp/1).
    var syscalls: Set<Int32> = []
    /// Coalesced zones, doorbells and irqfds it asked for (HostFastPaths.swift).
    let fastPaths = PluginFastPaths()
    /// Storage behind the last error_out message handed to the plugin (strdup'ed).
    private var errorText: UnsafeMutablePointer<CChar>?

    init(library: PluginLibrary, host: PluginHost) {
        self.library = library
        self.host = host
        self.log = host.logHandler
        self.reportStop = host.stopHandler
        self.name = "'\(library.id)' (\(library.path))"
        lifecycleTag = host.watchdog.tag(for: "\(library.id) (\(library.path))")
        handle = PluginHandle.acquire(for: self)
    }

    /// The watchdog's tag for calls into `init`, `destroy` and the state extension.
    let lifecycleTag: UInt64

    deinit {
        PluginHandle.recycle(handle)
        free(errorText)
    }

    /// True on the loading thread while init runs: where [load-thread] registrations go.
    var onLoadThread: Bool { initializing && pthread_equal(loadThread, pthread_self()) != 0 }

    /// Calls the plugin's init and wires what it registered.
    func initialize(config: String) throws(PluginError) {
        let (initFn, destroyFn) = (library.entry.pointee.`init`!, library.entry.pointee.destroy!)
        dryPIO = host.dispatcher.pio
        dryMMIO = host.dispatcher.mmio
        loadThread = pthread_self()
        initializing = true
        defer { (staged, stagedHypercalls, dryPIO, dryMMIO, undoIfInitFails, stopsFromInit) = ([], [], .init(), .init(), [], []) }
        var message: UnsafePointer<CChar>?
        let tag = lifecycleTag
        let result = pluginLoadLock.withLock {
            PluginThreadState.current.lifecycleCall(tag, .initialize) { config.withCString { initFn(table, $0, &message) } }
        }
        initializing = false
        guard let result else {
            for undo in undoIfInitFails.reversed() { undo() }
            handle.retire()
            fastPaths.close(vm: host.vm)
            let why = PluginText.message(message)
            throw PluginError(plugin: name, "init failed: \(why)")
        }
        instance = result
        do {
            try commit()
        } catch {
            fastPaths.quiesce()
            pluginLoadLock.withLock { PluginThreadState.current.lifecycleCall(tag, .destroy) { destroyFn(result) } }
            for undo in undoIfInitFails.reversed() { undo() }
            handle.retire()
            fastPaths.close(vm: host.vm)
            instance = nil
            throw PluginError(plugin: name, "cannot wire its handlers: \(error)")
        }
        for request in stopsFromInit { apply(request) }
    }

    func destroy() {
        guard let instance, let destroyFn = library.entry.pointee.destroy else { return }
        fastPaths.quiesce()
        let tag = lifecycleTag
        pluginLoadLock.withLock { PluginThreadState.current.lifecycleCall(tag, .destroy) { destroyFn(instance) } }
        handle.retire() // later calls through the plugin's host table: -ESHUTDOWN
        fastPaths.close(vm: host.vm)
        self.instance = nil
    }

    /// The plugin's own extension `id`, if it offers one.
    func pluginExtension(_ id: UnsafePointer<CChar>) -> UnsafeRawPointer? {
        guard let instance, let get = library.entry.pointee.get_extension else { return nil }
        return get(instance, id)
    }

    /// Keeps `text` alive for the plugin (until the next message) and points at it.
    func setError(_ text: String, _ out: UnsafeMutablePointer<UnsafePointer<CChar>?>?) {
        free(errorText)
        errorText = strdup(text)
        if let out { PluginPointer.store(UnsafePointer(errorText), at: out) }
    }

    /// Wires the staged registrations. Every check was made while staging (against
    /// copies of the dispatcher's tables, the hypercall port included) and `load`
    /// refuses a started dispatcher, so nothing here fails half-way in practice.
    private func commit() throws(VMMError) {
        if !stagedHypercalls.isEmpty { try TypedHypercall.installPort(host) }
        for handler in staged { try PluginDispatch.wire(handler, instance: self) }
        handlerSummaries = staged.map(\.summary) + stagedHypercalls.map { "hypercall \($0.number)" }
        for call in stagedHypercalls {
            call.tag = host.watchdog.tag(for: "\(library.id) 'hypercall \(call.number)' (\(library.path))")
            host.hypercalls[call.number] = call
        }
    }
}
