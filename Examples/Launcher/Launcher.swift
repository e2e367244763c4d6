import Glibc
import Logging
import VMMKit
import VMMPaging

/// Builds the VM `LaunchOptions` describe, runs it, and turns the outcome into a status.
struct Launcher {
    let options: LaunchOptions
    let log: Logger

    init(options: LaunchOptions) {
        self.options = options
        var logger = Logger(label: "vmm") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = Logger.Level(rawValue: options.logLevel) ?? .warning
        log = logger
    }

    func run() throws(LauncherError) -> Int32 {
        let o = options
        guard o.memory <= 0xc000_0000 else {
            throw LauncherError(.usage, "--memory \(Sizes.describe(o.memory)) is above the 3 GiB this launcher maps below the MMIO hole")
        }
        guard o.memory >= 2 << 20 else { throw LauncherError(.usage, "--memory must be at least 2M") }
        if o.vcpus > 1 && !o.useIRQChip {
            throw LauncherError(.usage, "--vcpus \(o.vcpus) needs --irqchip kernel: application processors are started with INIT/SIPI")
        }
        let kvm: KVM
        do { kvm = try KVM.open() } catch { throw LauncherError(.host, error.description) }
        StartupTrace.mark("kvm")
        let vm: VirtualMachine
        do { vm = try kvm.createVM() } catch { throw LauncherError(.host, error.description) }
        defer { vm.close() }
        do {
            if o.useIRQChip {
                try vm.createIRQChip()
                try vm.createPIT()
            }
            try vm.memory.addRegion(name: "ram", guestAddress: 0, size: o.memory)
        } catch { throw LauncherError(.host, error.description) }

        let request = ImageRequest(path: o.image!, append: o.append, initrd: o.initrd, loadAddress: o.loadAddress,
                                   entry: o.entry, flatMode: o.mode)
        let boot = try ImageLoader(memory: vm.memory, ramSize: o.memory).load(request)
        log.info("loaded \(o.image!): \(boot)")

        let dispatcher = ExitDispatcher()
        let stats = (o.stats || o.trace) ? ExitStats(vcpus: o.vcpus, trace: o.trace) : nil
        do {
            for i in 0..<o.vcpus {
                let vcpu = try vm.createVCPU()
                try vcpu.configureCPUID(kvm)
                // Application processors stay uninitialised until the guest sends INIT/SIPI.
                if i == 0 { try vcpu.boot(boot) }
            }
            if let stats { try dispatcher.setObserver(stats) }
            try FwCfg(cpus: o.vcpus, ramSize: o.memory).register(on: dispatcher)
        } catch {
            throw LauncherError(.host, "\(error)")
        }
        let plugins = PluginHost(vm: vm, dispatcher: dispatcher)
        defer { plugins.close() }
        StartupTrace.mark("vm")
        try loadPlugins(plugins, dispatcher: dispatcher)
        let pager = try attachPager(plugins, vm: vm, dispatcher: dispatcher)
        defer { pager?.close() }
        let asyncPF = try attachAsyncPF(plugins, pager: pager)
        defer { asyncPF?.close() }
        StartupTrace.mark("plugins")

        let timer = o.maxSeconds.map { Watchdog(seconds: $0, vm: vm) }
        let reasons: [StopReason]
        do { reasons = try vm.run(dispatcher) } catch { throw LauncherError(.host, error.description) }
        let timedOut = timer?.cancel() ?? false
        StartupTrace.mark("guest")
        StartupTrace.report()
        if let stats, o.stats {
            var report = stats.report()
            if let p = pager?.statistics { report += "demand paging: \(p.pagesFetched) pages fetched (\(p.installedByVCPU) by vCPUs, \(p.installedByRouter) by the fault router)\n" }
            ExitStats.err(report)
        }
        return status(reasons, vmReason: vm.stopReason, timedOut: timedOut)
    }

    func status(_ reasons: [StopReason], vmReason: StopReason?, timedOut: Bool) -> Int32 {
        if case let .guestExit(code)? = vmReason { return (code << 1 | 1) & 0xff }
        if timedOut {
            ExitStats.err("vmm: stopped after --max-seconds \(options.maxSeconds!)\n")
            return LauncherStatus.timeout.rawValue
        }
        for (id, reason) in reasons.enumerated() {
            let status: LauncherStatus
            switch reason {
            case .halted, .requested: continue
            case let .guestExit(code): return (code << 1 | 1) & 0xff
            case .shutdown: status = .shutdown
            case .internalError, .failEntry: status = .internalError
            case .stuck, .memoryFault: status = .stuck
            case .handlerFailed: status = .plugin
            case .unhandled: status = .unhandled
            case .error: status = .host
            }
            ExitStats.err("vmm: vCPU \(id): \(reason)\n")
            return status.rawValue
        }
        return LauncherStatus.halted.rawValue
    }
}

/// `--max-seconds`: a thread that stops the VM when time is up.
final class Watchdog: @unchecked Sendable {
    private var thread = pthread_t()
    private let vm: VirtualMachine
    private let seconds: Double
    private var fired = false
    private var done = false
    private var lock = pthread_mutex_t()
    private var cond = pthread_cond_t()

    init(seconds: Double, vm: VirtualMachine) {
        self.seconds = seconds
        self.vm = vm
        pthread_mutex_init(&lock, nil)
        pthread_cond_init(&cond, nil)
        let me = Unmanaged.passRetained(self).toOpaque()
        pthread_create(&thread, nil, { raw in
            let w = Unmanaged<Watchdog>.fromOpaque(raw!).takeRetainedValue()
            w.wait()
            return nil
        }, me)
    }

    private func wait() {
        var deadline = timespec()
        clock_gettime(CLOCK_REALTIME, &deadline)
        let total = Double(deadline.tv_sec) + Double(deadline.tv_nsec) / 1e9 + seconds
        deadline.tv_sec = Int(total)
        deadline.tv_nsec = Int((total - Double(Int(total))) * 1e9)
        pthread_mutex_lock(&lock)
        while !done {
            if pthread_cond_timedwait(&cond, &lock, &deadline) == ETIMEDOUT { fired = true; break }
        }
        pthread_mutex_unlock(&lock)
        if fired { vm.requestStop(.requested) }
    }

    /// Ends the watchdog; returns whether it had fired.
    func cancel() -> Bool {
        pthread_mutex_lock(&lock)
        done = true
        pthread_cond_signal(&cond)
        pthread_mutex_unlock(&lock)
        pthread_join(thread, nil)
        return fired
    }
}
