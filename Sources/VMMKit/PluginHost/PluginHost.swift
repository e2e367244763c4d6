import CVMMPlugin
import Glibc

/// Loads exit-handler plugins (shared libraries built against `vmm_plugin.h`) into
/// one VM and wires their handlers into its `ExitDispatcher`.
///
/// ```swift
/// let plugins = PluginHost(vm: vm, dispatcher: dispatcher)
/// try plugins.load("DebugExit", config: "port=0xf4")  // by name, on the search path
/// try plugins.load("/opt/vmm/libmydev.so")            // or by path
/// let reasons = try vm.run(dispatcher)
/// plugins.close()                                     // destroy(), reverse load order
/// ```
///
/// Threads: `load` and `close` on the control thread, before the vCPUs start and after
/// they stopped (handlers cannot be added to a running dispatcher). Plugin handlers
/// then run on the vCPU threads. Each plugin's `init`/`destroy` calls are serialised
/// process-wide. Libraries are never unloaded (see `PluginLibrary`).
///
/// Keep the host alive until the vCPUs have stopped: the dispatcher's plugin handlers
/// call into instances that `close()` (or deinit) destroys.
public final class PluginHost: @unchecked Sendable {
    public let vm: VirtualMachine
    public let dispatcher: ExitDispatcher
    public let searchPath: PluginSearchPath
    /// Receives every plugin log line, at every level: (level, plugin id, message).
    /// Set it before loading; it is called from any thread, also from vCPU threads in
    /// the middle of an exit, so keep it short. By default errors and warnings go to
    /// stderr and lower levels are dropped; a VMM with its own logger forwards them
    /// there (the `vmm` launcher maps them onto swift-log, filtered by `--log-level`).
    public var logHandler: @Sendable (PluginLogLevel, String, String) -> Void = PluginHost.standardLog
    /// Receives each `request_stop` a plugin makes with a reason, once accepted (a vCPU
    /// that exists, or the whole VM; from init, once init succeeded). Set it before
    /// loading; it is called from any thread, also from vCPU threads in the middle of an
    /// exit. By default the request goes to stderr as one line (`PluginStopRequest`'s
    /// description); the `vmm` launcher prints it as a `vmm: ...` line.
    public var stopHandler: @Sendable (PluginStopRequest) -> Void = PluginHost.standardStop

    /// Loaded instances, in load order.
    private(set) var instances: [PluginInstance] = []
    /// Handlers registered for classes the dispatcher has no ranges for (MSR, OTHER,
    /// memory fault, async PF, HLT), kept to apply the same exclusivity rule.
    var classRanges: [ClassRange] = []
    /// Async page fault event handlers (VMM_EXIT_ASYNC_PF), highest priority first.
    var asyncPFHandlers: [PluginHandler] {
        get { eventHandlers.withLock { $0.asyncPF } }
        set { eventHandlers.withLock { $0.asyncPF = newValue } }
    }
    /// Memory-fault handlers (VMM_EXIT_MEMORY_FAULT), highest priority first: also asked
    /// for pages directly by a demand pager (`fetchPage`).
    var memoryFaultHandlers: [PluginHandler] {
        get { eventHandlers.withLock { $0.memoryFault } }
        set { eventHandlers.withLock { $0.memoryFault = newValue } }
    }
    /// Both lists under a lock, each read as a copy: a thread a plugin started in its
    /// init may raise async-PF events (or a pager fetch pages) while later plugins'
    /// handlers are still being added on the loading thread, which crashed the process.
    private let eventHandlers = Lock(EventHandlers())
    struct EventHandlers {
        var asyncPF: [PluginHandler] = []
        var memoryFault: [PluginHandler] = []
    }
    /// Typed hypercalls by number; read without locks once the vCPUs run.
    var hypercalls: [UInt32: TypedHypercall] = [:]
    var hypercallPortInstalled = false
    /// Async-PF records waiting for their vCPU's thread (kicks, pages installed in the
    /// background), by vCPU id; see PluginAsyncPFDelivery.swift.
    /// Pairs, not a `[UInt32: PostedAsyncPF]`: the first such dictionary makes the
    /// runtime scan every loaded image's conformance records, at every VM's start.
    let posted = Lock<[(vcpuID: UInt32, work: PostedAsyncPF)]>([])
    /// Which guest memory is present, once a demand pager stopped delivering the rest
    /// (`pagerStopped`); nil while none has.
    let stoppedPager = Lock<(@Sendable (UInt64, Int) -> Bool)?>(nil)
    /// vCPUs whose interrupt hook delivers `posted` (installed at load). These two are
    /// arrays, not `Set<UInt32>`: a few elements each, and the first `Set<UInt32>` of a
    /// process makes the runtime scan every loaded image's conformance records.
    var hookedVCPUs: [UInt32] = []
    /// MSRs plugins asked to see (vcpu/1 route_msrs), all plugins together, sorted, no repeats.
    var routedMSRs: [UInt32] = []
    /// The demand pager behind the pager/1 extension; set it before the vCPUs start.
    public var pageService: (any PluginPageService)?
    /// How plugins' handlers get a thread started (the thread/1 extension, offered only
    /// when this is set): runs its closure on a thread that may start threads. Set it
    /// before loading; the `vmm` launcher hands the request to its signal-stop thread.
    public var threadStarter: PluginThreadStarter?
    private(set) var closed = false
    /// Handler budget and overrun reports (PluginWatchdog.swift).
    let watchdog = PluginWatchdog()

    public init(vm: VirtualMachine, dispatcher: ExitDispatcher, searchPath: PluginSearchPath = .standard()) {
        self.vm = vm
        self.dispatcher = dispatcher
        self.searchPath = searchPath
    }

    deinit { close() }

    /// The plugins loaded so far, in load order.
    public var plugins: [LoadedPlugin] {
        instances.map { LoadedPlugin(id: $0.library.id, version: $0.library.version, path: $0.library.path,
                                     summary: $0.library.summary, abiVersion: $0.library.abiVersion,
                                     handlers: $0.handlerSummaries) }
    }

    /// Finds, opens, validates and initialises a plugin, then wires its handlers.
    /// `nameOrPath`: a path (contains `/`) or a name looked up on `searchPath`.
    /// `config` is handed to the plugin's `init` (by convention `key=value,key=value`).
    /// On any error nothing of the plugin stays registered and the message names it.
    @discardableResult
    public func load(_ nameOrPath: String, config: String = "") throws(PluginError) -> LoadedPlugin {
        try checkLoadable(nameOrPath)
        return try add(try PluginLibrary.open(try searchPath.resolve(nameOrPath)), config: config)
    }

    /// `load` for a plugin whose entry is linked into this process rather than dlopen'd
    /// (the fuzz targets build the bundled C plugins in): validated as a file's entry is.
    @discardableResult
    func load(entry: UnsafePointer<vmm_plugin_entry_t>, path: String, config: String = "") throws(PluginError) -> LoadedPlugin {
        try checkLoadable(path)
        return try add(try PluginLibrary.validate(entry, path: path), config: config)
    }

    private func checkLoadable(_ name: String) throws(PluginError) {
        guard !closed else { throw PluginError(plugin: name, "the plugin host is closed") }
        // The tables plugins extend are read without locks once a vCPU runs.
        guard !dispatcher.isFrozen else {
            throw PluginError(plugin: name, "the VM's vCPUs have already started: load plugins before vm.run or vcpu.start")
        }
    }

    private func add(_ library: PluginLibrary, config: String) throws(PluginError) -> LoadedPlugin {
        let instance = PluginInstance(library: library, host: self)
        try instance.initialize(config: config)
        instances.append(instance)
        installDeliveryHooks()
        return plugins.last!
    }

    /// Destroys every instance in reverse load order. Call it once the VM's vCPUs have
    /// stopped (after `vm.run` returned, or after `vm.close()`). Idempotent.
    public func close() {
        guard !closed else { return }
        closed = true
        // Watched to the end: a destroy that never returns is reported too.
        for instance in instances.reversed() { instance.destroy() }
        watchdog.stop()
        instances.removeAll()
        // The page service (a pager whose source is this host) would keep both alive.
        pageService = nil
    }

    /// The first loaded plugin's own extension table `id` (its entry's get_extension),
    /// e.g. the AsyncPF plugin's "org.vmmkit.async-pf.events/1": for the VMM. Call on
    /// the control thread while the plugins are loaded; the table stays valid until
    /// `close()`.
    public func pluginExtension(_ id: String) -> UnsafeRawPointer? {
        pluginLoadLock.withLock {
            for instance in instances { if let table = instance.pluginExtension(id) { return table } }
            return nil
        }
    }

    /// Plugin-offered extensions, for the host's get_extension (load thread only).
    func pluginExtension(_ id: UnsafePointer<CChar>, excluding caller: PluginInstance) -> UnsafeRawPointer? {
        for instance in instances where instance !== caller {
            if let table = instance.pluginExtension(id) { return table }
        }
        return nil
    }

    @Sendable static func standardLog(_ level: PluginLogLevel, _ plugin: String, _ message: String) {
        guard level <= .warn else { return }
        // One line whatever the plugin's text holds (it may repeat what a guest wrote).
        let line = "[\(level)] \(plugin): \(message.asOneLine)\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
    }
}

/// What `PluginHost.load` returns: the plugin's identity as its descriptor states it.
public struct LoadedPlugin: Sendable, Equatable {
    public let id: String
    public let version: String
    public let path: String
    public let summary: String
    /// "major.minor" of the ABI the plugin was built against.
    public let abiVersion: String
    /// One line per handler the plugin registered ("pio [0xf4..<0xf5] priority 0 exclusive").
    public let handlers: [String]
}

/// `enum vmm_log_level`, lower is more severe.
public enum PluginLogLevel: UInt32, Sendable, Comparable, CustomStringConvertible {
    case error = 0, warn, info, debug, trace

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
    public var description: String { ["error", "warn", "info", "debug", "trace"][Int(rawValue)] }
}
