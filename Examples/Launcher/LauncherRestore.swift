import Glibc
import VMMControl
import VMMKit
import VMMSnapshot

/// `vmm restore DIR`: the machine a `vmm run --snapshot-on-stop` (or the control API)
/// saved, rebuilt from its launcher blob with the same plugins, their states restored,
/// memory paged in lazily through userfaultfd or copied up front (`--eager`), then run
/// to the end with `vmm run`'s exit statuses.
struct RestoreRequest {
    var dir: String
    var eager = false
    var serial: SerialTarget?
    var debugcon: SerialTarget?
    /// Where LPT1's printed bytes go (`--parallel`); the port is there either way.
    var parallel: SerialTarget?
    /// The disk image at a new path (`--hda`); the machine must have a disk.
    var hda: String?
    /// Open the disk image read-only whatever the snapshot says (`--hda-readonly`).
    var hdaReadOnly = false
    var vgaText = SerialTarget.none
    var screendump = SerialTarget.none
    var maxSeconds: Double?
    var maxSecondsText: String?
    var logLevel = "warning"
    var stats = false
    var apiSock: String?
    /// Follow what the snapshot names outside the VM (`LauncherMachine.hostReference`).
    var trustSnapshot = false
    var handlerBudget = LaunchOptions.defaultHandlerBudget
    var noSeccomp = false
}

extension RestoreRequest {
    /// `vmm restore DIR [flags]` as the command-line library parsed it, checked.
    init(_ p: ParsedCommand) throws(LauncherError) {
        guard let dir = try p.string("dir") else { throw ParsedCommand.skew("restore without dir") }
        self.init(dir: dir, eager: p.flag("eager"), stats: p.flag("stats"), apiSock: try p.string("api-sock"),
                  trustSnapshot: p.flag("trust-snapshot"), noSeccomp: p.flag("no-seccomp"))
        serial = try p.string("serial").map { s throws(LauncherError) in try SerialTarget(flag: "--serial", s) }
        hda = try p.string("hda")
        hdaReadOnly = p.flag("hda-readonly")
        debugcon = try p.string("debugcon").map { s throws(LauncherError) in try SerialTarget(flag: "--debugcon", s) }
        parallel = try p.string("parallel").map { s throws(LauncherError) in try SerialTarget(flag: "--parallel", s) }
        if let s = try p.string("vga-text") { vgaText = try SerialTarget(flag: "--vga-text", s) }
        if let s = try p.string("screendump") { screendump = try SerialTarget(flag: "--screendump", s) }
        if let text = try p.string("max-seconds") {
            maxSeconds = try FlagValues.seconds(flag: "max-seconds", text, max: LaunchOptions.maxSecondsLimit)
            maxSecondsText = text
        }
        if let text = try p.string("handler-budget") {
            handlerBudget = try FlagValues.seconds(flag: "handler-budget", text, max: LaunchOptions.maxBudget)
        }
        if let logLevel = try p.string("log-level") {
            guard LaunchOptions.logLevels.contains(logLevel) else {
                throw LauncherError(.usage, "--log-level must be one of \(LaunchOptions.logLevels.joined(separator: ", "))")
            }
            self.logLevel = logLevel
        }
    }
}

extension Launcher {
    /// Checks the whole snapshot (every file, size and checksum) before building anything.
    static func restore(_ r: RestoreRequest) throws(LauncherError) -> Int32 {
        let image: SnapshotImage
        do { image = try SnapshotImage(path: r.dir) } catch { throw LauncherError(.snapshot, "cannot restore: \(error)") }
        guard let blob = image.devices.first(where: { $0.name == LauncherMachine.blobName }) else {
            throw LauncherError(.snapshot, "cannot restore \(r.dir): it has no '\(LauncherMachine.blobName)' state (not a snapshot of vmm run)")
        }
        let machine = try LauncherMachine.decode(blob.bytes, version: blob.version, where: r.dir)
        if !r.trustSnapshot, let named = machine.hostReference(serialReplaced: r.serial != nil, debugconReplaced: r.debugcon != nil,
                                                               parallelReplaced: r.parallel != nil, hdaReplaced: r.hda != nil) {
            throw LauncherError(.snapshot, "cannot restore \(r.dir): its launcher state names \(named); restore loads or opens what a snapshot names only with --trust-snapshot (a snapshot from elsewhere could name any library or file)")
        }
        var o = machine.options
        if let serial = r.serial { o.serial = serial }
        if let debugcon = r.debugcon {
            // The device is part of the machine: --debugcon moves its output, never adds or removes it.
            guard (debugcon == .none) == (o.debugcon == .none) else {
                throw LauncherError(.usage, debugcon == .none
                    ? "--debugcon none: the machine in \(r.dir) has a debug console (port 0xe9); give stdio or file:PATH to move its output"
                    : "--debugcon: the machine in \(r.dir) has no debug console (port 0xe9); a restore cannot add one")
            }
            o.debugcon = debugcon
        }
        // LPT1 is in every machine: --parallel moves its output anywhere, none too.
        if let parallel = r.parallel { o.parallel = parallel }
        if let hda = r.hda {
            // The disk is part of the machine: --hda moves its image, never adds one.
            guard o.hda != nil else { throw LauncherError(.usage, "--hda: the machine in \(r.dir) has no disk; a restore cannot add one") }
            o.hda = hda
        }
        if r.hdaReadOnly {
            guard o.hda != nil else { throw LauncherError(.usage, "--hda-readonly: the machine in \(r.dir) has no disk") }
            o.hdaReadOnly = true
        }
        o.vgaText = r.vgaText
        o.screendump = r.screendump
        o.maxSeconds = r.maxSeconds
        o.maxSecondsText = r.maxSecondsText
        o.logLevel = r.logLevel
        o.handlerBudget = r.handlerBudget
        o.noSeccomp = r.noSeccomp
        o.stats = r.stats
        o.image = r.dir
        o.apiSock = r.apiSock
        let lowRAM = try restoredLowRAM(image.manifest.regions.map { ($0.name, $0.guestAddress, $0.size) }, memory: o.memory, dir: r.dir)
        return try Launcher(options: o, lowRAM: lowRAM).resume(image, eager: r.eager)
    }

    /// RAM below the hole in a snapshot's machine: where and as large as the launcher
    /// state's memory puts it (fw_cfg, the CMOS and SMBIOS tell the guest that size), as
    /// `RAMLayout.split` does; or, for memory of 3 to 3.5 GiB, split at 3 GiB as the
    /// launcher did before it followed QEMU there: that guest booted with that map and
    /// goes on with it (fw_cfg's `etc/e820` and the CMOS say the same). Anything else is refused.
    static func restoredLowRAM(_ regions: [(name: String, address: UInt64, size: UInt64)], memory: UInt64, dir: String) throws(LauncherError) -> UInt64 {
        func layout(_ low: UInt64) -> [String] {
            ["ram 0x0 \(hex(low))"] + (memory > low ? ["ram-high 0x100000000 \(hex(memory - low))"] : [])
        }
        let ram = regions.filter { $0.name == "ram" || $0.name == "ram-high" }.map { "\($0.name) \(hex($0.address)) \(hex($0.size))" }
        let low = RAMLayout.split(memory).low
        if ram == layout(low) { return low }
        if memory > RAMLayout.holeStart, ram == layout(RAMLayout.holeStart) { return RAMLayout.holeStart }
        throw LauncherError(.snapshot, "cannot restore \(dir): the launcher state says \(Sizes.describe(memory)) of memory (\(layout(low).joined(separator: ", "))), the snapshot's RAM regions are \(ram.isEmpty ? "none" : ram.joined(separator: ", "))")
    }

    func resume(_ image: SnapshotImage, eager: Bool) throws(LauncherError) -> Int32 {
        let o = options, dir = image.path
        guard image.manifest.vcpuCount == o.vcpus else {
            throw LauncherError(.snapshot, "cannot restore \(dir): the launcher state says \(o.vcpus) vCPUs, the snapshot holds \(image.manifest.vcpuCount)")
        }
        // RAM as `restoredLowRAM` found it, and an in-kernel irqchip exactly when the
        // launcher state says so (the HPET, IRQ wiring and halt detection go by it).
        _ = try Self.restoredLowRAM(image.manifest.regions.map { ($0.name, $0.guestAddress, $0.size) }, memory: o.memory, dir: dir)
        guard (image.state.irqchip != nil) == o.useIRQChip else {
            throw LauncherError(.snapshot, "cannot restore \(dir): the launcher state says \(o.useIRQChip ? "an" : "no") in-kernel irqchip, the snapshot holds \(image.state.irqchip == nil ? "none" : "one")")
        }
        // The framebuffer is a region of its own: there, where and as large as --vga std puts it, or not at all.
        let vram = image.manifest.regions.filter { $0.name == BochsDisplay.regionName }
        let vramFits = vram.count == 1 && vram[0].guestAddress == BochsDisplay.framebufferAddress && vram[0].size == UInt64(BochsDisplay.vramSize)
        guard o.vgaStd ? vramFits : vram.isEmpty else {
            throw LauncherError(.snapshot, "cannot restore \(dir): the launcher state says \(o.vgaStd ? "--vga std" : "no --vga std"), but the snapshot \(vram.isEmpty ? "has no" : "has a") '\(BochsDisplay.regionName)' region\(o.vgaStd && !vram.isEmpty ? " of another place or size" : "")")
        }
        // Older snapshots have no such blob: their built-in devices start as after a reset.
        let deviceState = try image.devices.first { $0.name == BuiltInDeviceState.blobName }.map { blob throws(LauncherError) in
            try BuiltInDeviceState.decode(blob.bytes, version: blob.version, where: dir)
        }
        // The fw_cfg files the machine had, their bytes as the guest saw them.
        var fwCfgFiles: [FwCfgFile] = []
        if let blob = image.devices.first(where: { $0.name == FwCfgFile.blobName }) {
            do { fwCfgFiles = try FwCfgFile.decode(blob.bytes, version: blob.version) } catch {
                throw LauncherError(.snapshot, "\(dir): fw_cfg files: \(error.why)")
            }
        }
        try SignalStop.install()
        let kvm: KVM
        do { kvm = try KVM.open() } catch { throw LauncherError(.host, error.description) }
        let restored: RestoredVM
        do { restored = try image.restore(on: kvm, memory: eager ? .eager : .lazy) } catch {
            throw LauncherError(.snapshot, "cannot restore: \(error)")
        }
        defer { restored.close() }
        let vm = restored.vm
        let dispatcher = ExitDispatcher()
        let (stats, unassigned, exitCounter) = try machineDevices(on: dispatcher, memory: vm.memory, fwCfgFiles: fwCfgFiles)
        let screen = try VGATextScreen.sink(o.vgaText)
        let picture = try Screendump.sink(o.screendump)
        let plugins = PluginHost(vm: vm, dispatcher: dispatcher)
        plugins.logHandler = PluginLog.handler(log)
        plugins.stopHandler = PluginLog.stop
        plugins.threadStarter = ThreadRequest.pluginStarter
        defer { plugins.close() }
        // As `vmm run`: plugin calls watched from the first init on (state restores too).
        let stuck = StuckRunExit()
        try watchHandlers(plugins, stuck: stuck)
        // The RTC's interrupt thread ends with the run (before the VM closes).
        defer { devices.close() }
        try loadPlugins(plugins, dispatcher: dispatcher)
        do { try plugins.restoreStates(image.devices) } catch {
            throw LauncherError(.snapshot, "cannot restore \(dir): \(error)")
        }
        if let deviceState {
            do { try devices.restore(deviceState) } catch { throw LauncherError(.snapshot, "cannot restore \(dir): \(error.message)") }
            try devices.startThreads()
        }
        do { try restored.attach(to: dispatcher) } catch { throw LauncherError(.host, "cannot page the snapshot in: \(error)") }
        // Ring-3 faults on lazily restored RAM reach the AsyncPF plugin as PAGE_MISSING.
        let pager = restored.pagers.first { $0.region.name == "ram" }
        let asyncPF = try attachAsyncPF(plugins, pager: pager)
        defer { asyncPF?.close() }
        // Guests that enabled async PF before the snapshot do not write the MSR again.
        asyncPF?.assumeGuestsEnabled(vm.vcpus.map(\.id))
        log.info("restored \(dir) (\(eager ? "eager" : "lazy")), \(o.vcpus) vCPU(s), \(plugins.plugins.count) plugin(s)")
        // The restored VM is controlled like a booted one, and can be snapshotted again.
        let snapshot = LauncherSnapshot(vm: vm, dispatcher: dispatcher, plugins: plugins, options: o, devices: devices,
                                        pagers: restored.pagers)
        let api = try startAPI(vm: vm, exitCounter: exitCounter, pager: pager, asyncPF: asyncPF, snapshot: snapshot)
        defer { api?.stop() }

        // The same vCPU seccomp allow-list and --max-seconds as a booted machine's.
        let guards = try guardVCPUs(vm, plugins, stuck: stuck)
        let supervisor = VMSupervisor(vm: vm, detectHalt: o.useIRQChip)
        let (outcome, timedOut) = try run(supervisor, dispatcher, guards: guards, stuck: stuck, api: api)
        if let screen { VGATextScreen.write(from: vm.memory, devices.vga, to: screen) }
        if let picture { Screendump.write(.init(devices, memory: vm.memory), to: picture) }
        if let stats {
            var report = stats.report() + (unassigned?.report() ?? "")
            report += "restore: \(restored.pagesFetched) pages fetched from the snapshot\n"
            report += Self.asyncPFReport(asyncPF)
            ExitStats.err(report)
        }
        return status(outcome, vm: vm, timedOut: timedOut)
    }
}

extension Launcher {
    /// `--snapshot-on-stop DIR`: after a run that --max-seconds or a stop request ended
    /// (no guest exit, reset, power-off or panic, no error, no halt), the machine is saved and the status is 22.
    /// nil when the run ended otherwise (its own status stands).
    func snapshotOnStop(_ outcome: VMSupervisor.Outcome, vm: VirtualMachine, timedOut: Bool,
                        snapshot: LauncherSnapshot) throws(LauncherError) -> Int32? {
        guard let dir = options.snapshotOnStop else { return nil }
        switch vm.stopReason {
        case .guestExit?, .reset?, .powerOff?, .guestPanic?: return nil
        default: break
        }
        guard outcome.firstError == nil, !outcome.allHalted else { return nil }
        let stopped = outcome.reasons.allSatisfy { if case .requested = $0 { true } else { false } }
        guard timedOut || stopped else { return nil }
        let summary = try snapshot.snapshot(to: dir)
        let sig = SignalStop.first.load(ordering: .relaxed)
        let why = timedOut ? " after \(options.maxSecondsGiven)" : sig != 0 ? " by \(SignalStop.name(sig))" : ""
        ExitStats.err("vmm: stopped\(why); snapshot saved to \(dir) (\(summary.dataBytes) of \(summary.memoryBytes) memory bytes written)\n")
        return LauncherStatus.snapshotSaved.rawValue
    }

    /// `--snapshot-on-stop DIR` checked before the guest starts (and again by the writer
    /// at the stop): a directory that exists, a parent this user cannot create it in, or
    /// a launcher state that cannot be saved (a newline in a console or disk path) used
    /// to be found only after the whole run, and its state was lost.
    func checkSnapshotDestination() throws(LauncherError) {
        guard let dir = options.snapshotOnStop else { return }
        _ = try LauncherMachine(options).encodedForSaving()
        let named = "--snapshot-on-stop \(dir.quotedForMessage)"
        var st = stat()
        guard !dir.isEmpty, lstat(dir, &st) != 0 else {
            throw LauncherError(.snapshot, "\(named): \(dir.isEmpty ? "an empty path" : "exists already; a snapshot never overwrites one")")
        }
        // The folder it goes in: what precedes the last '/' of the directory the writer makes.
        let path = SnapshotWriter.directory(dir)
        let folder = path.utf8.lastIndex(of: UInt8(ascii: "/")).map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        guard stat(folder, &st) == 0 else {
            throw LauncherError(.snapshot, "\(named): its folder \(folder.quotedForMessage) cannot be used: \(String(cString: strerror(errno)))")
        }
        guard st.st_mode & S_IFMT == S_IFDIR else {
            throw LauncherError(.snapshot, "\(named): \(folder.quotedForMessage) is not a directory")
        }
        guard access(folder, W_OK | X_OK) == 0 else {
            throw LauncherError(.snapshot, "\(named): cannot create it in \(folder.quotedForMessage): \(String(cString: strerror(errno)))")
        }
    }
}
