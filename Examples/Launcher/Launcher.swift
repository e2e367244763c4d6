import Glibc
import Logging
import VMMControl
import VMMKit
import VMMLoader
import VMMPaging

/// Builds the VM `LaunchOptions` describe, runs it, and turns the outcome into a status.
struct Launcher {
    let options: LaunchOptions
    let log: Logger
    /// The devices the launcher adds itself (fw_cfg, RTC, reset and power-off paths, the
    /// built-in COM1), as registered: for snapshots.
    let devices = BuiltInDevices()

    /// RAM below the MMIO hole (`RAMLayout.split`; a restored machine's as its snapshot
    /// has it, `restoredLowRAM`), the rest of `options.memory` from 4 GiB up.
    let lowRAM: UInt64

    init(options: LaunchOptions, lowRAM: UInt64? = nil) {
        self.options = options
        self.lowRAM = lowRAM ?? RAMLayout.split(options.memory).low
        // Each log line's timestamp is local time: glibc reads /etc/localtime on the
        // first conversion, and when that was a plugin's line from a vCPU thread, the
        // seccomp list refused the openat and said so beside the line. Read it here, once.
        tzset()
        var logger = Logger(label: "vmm") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = Logger.Level(rawValue: options.logLevel) ?? .warning
        log = logger
    }

    func run() throws(LauncherError) -> Int32 {
        let o = options
        // As QEMU's pc machine: below 3.5 GiB all RAM below the MMIO hole, from there
        // 3 GiB of it and the rest from 4 GiB up.
        let highRAM = o.memory - lowRAM
        guard highRAM <= RAMLayout.maxHighRAM else {
            throw o.rangeError(key: "memory", flag: "memory", "\(Sizes.describe(o.memory)) is above the \(Sizes.describe(RAMLayout.maxMemory)) this launcher maps")
        }
        guard o.memory >= RAMLayout.minMemory else { throw o.rangeError(key: "memory", flag: "memory", "must be at least 2M") }
        // RAM is mapped in whole pages: 2049K ended in a host error (status 20) at the mapping.
        guard o.memory % 4096 == 0 else { throw o.rangeError(key: "memory", flag: "memory", "\(o.memory) bytes is not a whole number of 4 KiB pages") }
        if o.vcpus > 1 && !o.useIRQChip {
            throw o.rangeError(key: "vcpus", flag: "vcpus", "\(o.vcpus) needs irqchip kernel: application processors are started with INIT/SIPI")
        }
        try checkSnapshotDestination()
        // Every file named is read before anything is built: a missing one ends the run here.
        if o.pvpanic, o.fwCfg.contains(where: { $0.name == PVPanic.fwCfgFile.name }) {
            throw o.rangeError(key: "fwCfg", flag: "fw-cfg", "\(PVPanic.fwCfgFile.name): the name is the machine's own with pvpanic")
        }
        let fwCfgFiles = try FwCfgFile.load(o.fwCfg, machine: o.pvpanic ? [PVPanic.fwCfgFile] : []) { "--fw-cfg \($0.name)" }
        try SignalStop.install()
        let kvm: KVM
        do { kvm = try KVM.open() } catch { throw LauncherError(.host, error.description) }
        StartupTrace.mark("kvm")
        let vm: VirtualMachine
        do { vm = try kvm.createVM() } catch { throw LauncherError(.host, error.description) }
        defer { vm.close() }
        do {
            // Memslots and the MSR filter before the irqchip: each is followed in the
            // kernel by an SRCU synchronisation, which after KVM_CREATE_IRQCHIP/PIT2 waits
            // a whole grace period (6-10 ms here) and before them returns at once.
            try vm.memory.addRegion(name: "ram", guestAddress: 0, size: lowRAM)
            if highRAM > 0 { try vm.memory.addRegion(name: "ram-high", guestAddress: 1 << 32, size: highRAM) }
            if o.vgaStd {
                try vm.memory.addRegion(name: BochsDisplay.regionName, guestAddress: BochsDisplay.framebufferAddress, size: UInt64(BochsDisplay.vramSize))
            }
            if o.useIRQChip {
                try routeDefaultMSRs(vm)
                try vm.createIRQChip()
                try vm.createPIT()
            }
        } catch { throw LauncherError(.host, error.description) }

        let request = ImageRequest(path: o.image!, append: o.append, initrd: o.initrd, loadAddress: o.loadAddress,
                                   entry: o.entry, flatMode: o.mode)
        let boot: BootEntry
        do {
            // As SeaBIOS under QEMU: MP and ACPI tables for the processors and the I/O
            // APIC the in-kernel irqchip gives (without it there are no APICs to describe).
            let firmware = o.useIRQChip ? try PCFirmware(processors: o.vcpus, hpet: !o.noHPET, devices: o.firmwareDevices, uuid: o.uuid.bytes) : nil
            boot = try ImageLoader(memory: vm.memory, ramSize: lowRAM, highRAMSize: highRAM, firmware: firmware).load(request)
        } catch {
            // A request error (entry, load address, mode, command line) is a config
            // error when what it is about came from the file, not a flag: the file's
            // `mode` with `--append` for an image that takes none is the flag's error.
            let keys: [LoaderError.Field: String] = [.loadAddress: "loadAddr", .entry: "entry", .mode: "mode", .append: "append", .initrd: "initrd"]
            let given = Set(error.fields.compactMap { keys[$0] }).filter { o.fromConfig.contains($0) || o.fromFlags.contains($0) }
            if error.kind == .request, let file = o.configFile, !given.isEmpty, given.isSubset(of: o.fromConfig) {
                throw LauncherError(.config, "\(file): \(error.message)")
            }
            throw LauncherError(error.kind == .image ? .image : .usage, error.message)
        }
        log.info("loaded \(o.image!): \(boot)")
        // QEMU boots these through SeaBIOS, which leaves the PIT ticking and the PICs
        // set up; an ELF64 or flat image is this launcher's own and meets them as KVM makes them.
        let throughSeaBIOS: Bool
        switch boot {
        case .protected32, .linux64:
            throughSeaBIOS = true
            if o.useIRQChip {
                do { try vm.applySeaBIOSInterruptState() } catch { throw LauncherError(.host, error.description) }
            }
        default: throughSeaBIOS = false
        }

        let dispatcher = ExitDispatcher()
        do {
            for i in 0..<o.vcpus {
                let vcpu = try vm.createVCPU()
                try vcpu.configureCPUID(kvm)
                // Application processors stay uninitialised until the guest sends INIT/SIPI.
                if i == 0 { try vcpu.boot(boot) }
            }
        } catch {
            throw LauncherError(.host, "\(error)")
        }
        let (stats, unassigned, exitCounter) = try machineDevices(on: dispatcher, memory: vm.memory, fwCfgFiles: fwCfgFiles)
        let screen = try VGATextScreen.sink(o.vgaText)
        let picture = try Screendump.sink(o.screendump)
        let plugins = PluginHost(vm: vm, dispatcher: dispatcher)
        plugins.logHandler = PluginLog.handler(log)
        plugins.stopHandler = PluginLog.stop
        plugins.threadStarter = ThreadRequest.pluginStarter
        defer { plugins.close() }
        StartupTrace.mark("vm")
        // Watched from the first plugin's init on (a plugin that never returns from it).
        let stuck = StuckRunExit()
        try watchHandlers(plugins, stuck: stuck)
        // The RTC's interrupt thread ends with the run (before the VM closes).
        defer { devices.close() }
        try loadPlugins(plugins, dispatcher: dispatcher)
        // SeaBIOS enabled A20 through port 0x92 before such a kernel ran (with or without
        // the irqchip: the port is the machine's either way).
        if throughSeaBIOS { devices.systemControlA?.restore(SystemControlPortA.seaBIOSValue) }
        let pager = try attachPager(plugins, vm: vm, dispatcher: dispatcher)
        defer { pager?.close() }
        let asyncPF = try attachAsyncPF(plugins, pager: pager)
        defer { asyncPF?.close() }
        let snapshot = LauncherSnapshot(vm: vm, dispatcher: dispatcher, plugins: plugins, options: o, devices: devices,
                                        pagers: pager.map { [$0] } ?? [])
        StartupTrace.mark("plugins")

        let api = try startAPI(vm: vm, exitCounter: exitCounter, pager: pager, asyncPF: asyncPF, snapshot: snapshot)
        defer { api?.stop() }

        let guards = try guardVCPUs(vm, plugins, stuck: stuck)
        // The machine stops as a whole on a vCPU's error; with an in-kernel irqchip HLT
        // never reaches user space, so the supervisor detects a machine that halted for good.
        let supervisor = VMSupervisor(vm: vm, detectHalt: o.useIRQChip)
        let (outcome, timedOut) = try run(supervisor, dispatcher, guards: guards, stuck: stuck, api: api)
        if let screen { VGATextScreen.write(from: vm.memory, devices.vga, to: screen) }
        if let picture { Screendump.write(.init(devices, memory: vm.memory), to: picture) }
        StartupTrace.mark("guest")
        StartupTrace.report()
        if let stats, o.stats {
            var report = stats.report()
            report += unassigned?.report() ?? ""
            if let p = pager?.statistics { report += "demand paging: \(p.pagesFetched) pages fetched (\(p.installedByVCPU) by vCPUs, \(p.installedByRouter) by the fault router, \(p.readAhead) read ahead)\n" }
            report += Self.asyncPFReport(asyncPF)
            ExitStats.err(report)
        }
        if let saved = try snapshotOnStop(outcome, vm: vm, timedOut: timedOut, snapshot: snapshot) { return saved }
        return status(outcome, vm: vm, timedOut: timedOut)
    }

    /// A guest exit wins, then the first vCPU error (even when --max-seconds elapsed
    /// too), then the timeout; a clean halt is 0.
    /// Where the MMIO hole starts (RAM below it) and how much RAM may go above 4 GiB.
    /// What the launcher itself adds to every machine it runs (booted or restored): the
    /// `--stats`/`--trace` observer, the control API's exit counter, fw_cfg (its DMA
    /// transfers in `memory`, its directory with `fwCfgFiles`) and unassigned I/O.
    func machineDevices(on dispatcher: ExitDispatcher, memory: GuestMemory, fwCfgFiles: [FwCfgFile]) throws(LauncherError)
        -> (stats: ExitStats?, unassigned: UnassignedIO?, exitCounter: ExitKindCounter?) {
        let o = options
        let stats = (o.stats || o.trace) ? ExitStats(vcpus: o.vcpus, trace: o.trace) : nil
        let unassigned = o.strictIO ? nil : UnassignedIO(trace: o.trace)
        let exitCounter = o.apiSock.map { _ in ExitKindCounter(vcpus: o.vcpus, chaining: stats) }
        do {
            if let observer: ExitObserver = exitCounter ?? stats { try dispatcher.setObserver(observer) }
            // FW_CFG_HPET names the HPET where the ACPI tables do (a plugin may serve it).
            let fwCfg = FwCfg(cpus: o.vcpus, ramSize: o.memory, lowRAM: lowRAM,
                              files: fwCfgFiles, memory: memory, uuid: o.uuid.bytes, hpet: o.useIRQChip && !o.noHPET)
            try fwCfg.register(on: dispatcher)
            devices.fwCfg = fwCfg
            try unassigned?.register(on: dispatcher)
        } catch {
            throw LauncherError(.host, "\(error)")
        }
        return (stats, unassigned, exitCounter)
    }

    func status(_ outcome: VMSupervisor.Outcome, vm: VirtualMachine, timedOut: Bool) -> Int32 {
        let reasons = outcome.reasons
        if case let .guestExit(code)? = vm.stopReason { return (code << 1 | 1) & 0xff }
        if case .powerOff? = vm.stopReason { return LauncherStatus.halted.rawValue } // quietly, as QEMU exits
        if case let .reset(how)? = vm.stopReason {
            ExitStats.err("vmm: the guest asked for a reset (\(how)); vmm does not reboot, so the run ends, as QEMU's with -no-reboot\n")
            return LauncherStatus.halted.rawValue
        }
        if case let .guestPanic(how)? = vm.stopReason {
            ExitStats.err("vmm: the guest panicked (\(how))\n")
            return LauncherStatus.panicked.rawValue
        }
        if let first = outcome.firstError {
            let status = Self.status(of: reasons[first])
            ExitStats.err("vmm: vCPU \(first): \("\(reasons[first])".asOneLine)\n")
            for (id, reason) in reasons.enumerated() where id != first {
                ExitStats.err("vmm: vCPU \(id): \(Self.describeStopped(reason, vm.vcpus[id]).asOneLine)\n")
            }
            if timedOut { ExitStats.err("vmm: \(options.maxSecondsGiven) elapsed too\n") }
            return status.rawValue
        }
        if timedOut {
            ExitStats.err("vmm: stopped after \(options.maxSecondsGiven)\n")
            return LauncherStatus.timeout.rawValue
        }
        for reason in reasons {
            if case let .guestExit(code) = reason { return (code << 1 | 1) & 0xff }
        }
        return LauncherStatus.halted.rawValue
    }

    static func status(of reason: StopReason) -> LauncherStatus {
        switch reason {
        case .halted, .requested, .guestExit, .reset, .powerOff: .halted
        case .guestPanic: .panicked
        case .shutdown: .shutdown
        case .internalError, .failEntry: .internalError
        case .stuck, .memoryFault, .hardwarePoison: .stuck
        case .handlerFailed: .plugin
        case .unhandled: .unhandled
        case .error: .host
        }
    }

    /// A vCPU the machine's stop took with it: where it was and in what state.
    static func describeStopped(_ reason: StopReason, _ vcpu: VCPU) -> String {
        guard case .requested = reason else { return reason.description }
        let rip = (try? vcpu.registers().rip).map { " at RIP \(hex($0))" } ?? ""
        let state = switch try? vcpu.mpState() {
        case 0?: "running"
        case 1?, 2?: "waiting for INIT/SIPI"
        case 3?: "halted"
        default: "in an unknown state"
        }
        return "stopped with the machine (was \(state)\(rip))"
    }
}

/// `--max-seconds`: a thread that stops the VM when time is up.
final class Watchdog: @unchecked Sendable {
    private var thread = pthread_t()
    private let vm: VirtualMachine
    private let seconds: Double
    private let onFire: @Sendable () -> Void
    private let cancelled = Latch()
    /// Written by the watchdog's thread, read by `cancel` after joining it.
    private var fired = false

    init(seconds: Double, vm: VirtualMachine, onFire: @escaping @Sendable () -> Void = {}) throws(VMMError) {
        self.seconds = seconds
        self.vm = vm
        self.onFire = onFire
        thread = try HostThread.start("time-limit") { self.wait() }
    }

    private func wait() {
        // Clamped there to 1e9 s, the most the options allow anyway.
        guard !cancelled.wait(seconds: seconds) else { return }
        fired = true
        vm.requestStop(.requested)
        onFire()
    }

    /// Ends the watchdog; returns whether it had fired.
    func cancel() -> Bool {
        cancelled.open()
        pthread_join(thread, nil)
        return fired
    }
}

extension LaunchOptions {
    /// The ISA devices the DSDT describes, where the launcher puts them as QEMU's `pc` has
    /// them: the i8042, the RTC, the floppy controller, LPT1 and fw_cfg always (a plugin that takes
    /// their ports takes their description with them), COM1 with the default plugins (the UART plugin or its
    /// stand-in), pvpanic with `--pvpanic`. The HPET is `noHPET`'s.
    var firmwareDevices: PCFirmware.Devices {
        var d: PCFirmware.Devices = [.keyboard, .rtc, .floppy, .parallel, .fwCfg]
        if !noDefaultPlugins { d.insert(.serial) }
        if pvpanic { d.insert(.pvpanic) }
        return d
    }
}
