import AsyncPFCore
import CKVM
import VMMAsyncPF
import VMMPaging
import VMMKit

/// The plugins every `vmm run` loads unless `--no-default-plugins`, by name from the
/// package's build folders (or `VMM_PLUGIN_PATH`): name, config, and the built-in
/// stand-in used when the library has not been built.
enum DefaultPlugins {
    struct Default {
        let name: String
        let config: String
        let role: String
        /// Whether a `--plugin` of the same name replaces it (one instance) or stacks above
        /// it (the zero-fill pager stays below any snapshot MemoryFault the user adds).
        var replaceable = true
    }

    static func all(serial: SerialTarget, vgaStd: Bool = false) -> [Default] {
        // The 16550A plugin is COM1; --serial picks its output, and stdio also makes
        // stdin its keyboard (a terminal is put in raw mode and restored on every exit).
        let console = switch serial {
        case .stdio: "port=0x3f8,output=stdout,input=stdin"
        case let .file(path): "port=0x3f8,output=file:\(path)"
        case .none: "port=0x3f8,output=none"
        }
        return [
            Default(name: "DebugExit", config: "port=0xf4", role: "debug-exit"),
            // Demand-zero RAM below any snapshot plugin the user adds (those use priority 0).
            Default(name: "MemoryFault", config: "fill=zero,priority=-1000", role: "demand-paging", replaceable: false),
            Default(name: "UART", config: console, role: "console"),
            // User-space async page faults (a Swift plugin, ABI 1.1). Harmless for guests that
            // never enable it: they see the CPUID bits; the three MSRs are answered by it.
            Default(name: "AsyncPF", config: "", role: "async-pf"),
            // PCI configuration mechanism #1 with QEMU's i440FX host bridge at 00:00.0 and
            // PIIX3's ISA bridge and IDE controller at 00:01.0 and 00:01.1 (C); with
            // --vga std, the display at 00:02.0 (its framebuffer in BAR 0).
            Default(name: "PCIHost", config: vgaStd ? "vga=std" : "", role: "pci-host"),
        ]
    }
}

extension Launcher {
    /// Loads the defaults, then every `--plugin PATH[,key=value...]`. A default that is
    /// not built falls back to a built-in device (with a warning); anything else that
    /// fails is a plugin error naming the plugin.
    func loadPlugins(_ host: PluginHost, dispatcher: ExitDispatcher) throws(LauncherError) {
        // Arrays of a few names: the first `Set<String>` of a process makes the runtime
        // scan every loaded image's conformance records (~0.25 million instructions).
        var loadedRoles: [String] = []
        if !options.noDefaultPlugins {
            // `--plugin AsyncPF,key=value` replaces the default of that name (one instance).
            let named = options.plugins.map { Self.split($0).0 }
            for d in DefaultPlugins.all(serial: options.serial, vgaStd: options.vgaStd) where !(d.replaceable && named.contains(d.name)) {
                do {
                    _ = try host.searchPath.resolve(d.name)
                } catch {
                    log.warning("default plugin \(d.name) is not built (run scripts/build-plugins, or swift build --product \(d.name) for a Swift plugin); using the built-in \(d.role)")
                    continue
                }
                do {
                    let p = try host.load(d.name, config: d.config)
                    log.info("loaded default plugin \(p.id) \(p.version) from \(p.path)")
                    loadedRoles.append(d.role)
                } catch { throw LauncherError(.plugin, error.description) }
            }
        }
        for spec in options.plugins {
            let (path, config) = Self.split(spec)
            do {
                let p = try host.load(path, config: config)
                log.info("loaded plugin \(p.id) \(p.version) from \(p.path)")
            } catch { throw LauncherError(.plugin, error.description) }
        }
        try registerMachineControls(on: dispatcher, vm: host.vm)
        try registerDebugConsole(on: dispatcher)
        try registerDisk(on: dispatcher, vm: host.vm)
        try registerDisplay(on: dispatcher, vm: host.vm)
        guard !options.noDefaultPlugins else { return }
        do {
            // A stand-in serves a role no default took, where no plugin of the user's
            // already sits: `--plugin UART,output=…` is COM1 itself, `--plugin
            // UART,port=0x2f8,…` leaves COM1 to the stand-in.
            if !loadedRoles.contains("console"), dispatcher.pioOwner(port: BasicConsole.com1, count: 8) == nil {
                let console = try BasicConsole(options.serial)
                try console.register(on: dispatcher)
                devices.console = console
            }
            let debugExit: UInt16 = 0xf4 // the DebugExit default's port
            if !loadedRoles.contains("debug-exit"), dispatcher.pioOwner(port: debugExit) == nil {
                try dispatcher.registerPIO(port: debugExit, owner: "debug-exit (built-in)") { io, vcpu in
                    vcpu.stopMachine(.guestExit(code: Int32(io.value & 0xff)))
                }
            }
        } catch let error as LauncherError {
            throw error
        } catch {
            throw LauncherError(.plugin, "\(error)")
        }
    }

    /// Ports that are there but hold nothing, as QEMU's `ioport80` and `ioportF0`: 0x80
    /// (POST codes, Linux's I/O delay `outb_p`) and 0xf0 (clearing the FPU error, IRQ 13,
    /// which i386 kernels write in their FPU error handler).
    static let quietPorts: [(port: UInt16, owner: String)] = [(0x80, "POST port 0x80 (built-in)"),
                                                             (0xf0, "FPU error port 0xf0 (built-in)")]

    /// The machine's reset and power-off paths, where no plugin claims their ports, with
    /// or without the default plugins (as fw_cfg): the reset control on port 0xcf9,
    /// System Control Port A on port 0x92, with --pvpanic QEMU's pvpanic on port 0x505, the i8042 on ports 0x60 and 0x64, ACPI's PM1a
    /// event and control blocks on ports 0x600-0x605, its PM timer on ports 0x608-0x60b;
    /// the RTC on ports 0x70 and 0x71; the HPET at 0xfed00000 (with the irqchip); the VGA's CRT controller, miscellaneous output and
    /// input status (`VGARegisters`) and its DAC (`VGADAC`); LPT1 on ports 0x378-0x37f
    /// (`ParallelPort`); the ISA DMA controllers (`ISADMA`); and ports 0x80 and 0xf0 (`quietPorts`).
    func registerMachineControls(on dispatcher: ExitDispatcher, vm: VirtualMachine) throws(LauncherError) {
        do {
            // The HPET, which the ACPI tables describe, on machines that have them (unless --no-hpet).
            var hpet: HPET?
            if options.useIRQChip, !options.noHPET, dispatcher.mmioOwner(address: HPETState.base, length: HPETState.size) == nil {
                let device = HPET()
                try device.register(on: dispatcher)
                // A failed raise (the VM closing) has no one to tell: the run is ending.
                device.connectInterrupts(line: { [vm] gsi, level in try? vm.setIRQLine(gsi, level: level) },
                                         pit: { [vm] enabled in try? vm.setPITSilenced(!enabled) })
                devices.hpet = device
                hpet = device
            }
            if dispatcher.pioOwner(port: RTC.indexPort, count: 2) == nil {
                let rtc = RTC(cpus: options.vcpus, lowRAM: lowRAM, highRAM: options.memory - lowRAM)
                try rtc.register(on: dispatcher)
                devices.rtc = rtc
                // IRQ 8 through the HPET when there is one, as QEMU's pc wires it (LegacyReplacement takes it).
                if let hpet {
                    rtc.connectInterrupts { level in hpet.rtcLine(level) }
                } else if options.useIRQChip {
                    // A failed raise (the VM closing) has no one to tell: the run is ending.
                    rtc.connectInterrupts { [vm] level in try? vm.setIRQLine(8, level: level) }
                }
            }
            if dispatcher.pioOwner(port: ACPIPowerManagement.controlPort, count: 2) == nil {
                // With the in-kernel irqchip the guest has ACPI tables (PCFirmware) and an SCI.
                // A failed raise (the VM closing) has no one to tell: the run is ending.
                var sci: (@Sendable (Bool) -> Void)?
                if options.useIRQChip { sci = { [vm] level in _ = try? vm.setIRQLine(ACPIPowerManagement.sciIRQ, level: level) } }
                let power = ACPIPowerManagement(acpiMode: options.useIRQChip, sciLine: sci)
                try power.register(on: dispatcher)
                devices.powerManagement = power
            }
            if dispatcher.pioOwner(port: ACPIPMTimer.port, count: 4) == nil {
                let timer = ACPIPMTimer()
                try timer.register(on: dispatcher)
                devices.pmTimer = timer
            }
            if VGARegisters.ports.allSatisfy({ dispatcher.pioOwner(port: $0) == nil }) {
                let vga = VGARegisters()
                try vga.register(on: dispatcher)
                devices.vga = vga
                if VGADAC.ports.allSatisfy({ dispatcher.pioOwner(port: $0) == nil }) {
                    let dac = VGADAC()
                    try dac.register(on: dispatcher)
                    devices.dac = dac
                }
            }
            // QEMU's pvpanic, with --pvpanic (stateless: nothing to keep for snapshots).
            if options.pvpanic, dispatcher.pioOwner(port: PVPanic.port) == nil {
                try PVPanic.register(on: dispatcher)
            }
            if dispatcher.pioOwner(port: ResetControl.port) == nil {
                let reset = ResetControl()
                try reset.register(on: dispatcher)
                devices.resetControl = reset
            }
            if dispatcher.pioOwner(port: SystemControlPortA.port) == nil {
                let portA = SystemControlPortA()
                try portA.register(on: dispatcher)
                devices.systemControlA = portA
            }
            for (port, owner) in Self.quietPorts where dispatcher.pioOwner(port: port) == nil {
                // Writes are dropped and reads give all-ones, as unassigned I/O would, but
                // with --strict-io a guest that writes here must not stop (status 18).
                try dispatcher.registerPIO(port: port, owner: owner) { io, _ in
                    if !io.isWrite { for i in 0..<io.count { io.setElement(i, ~0) } }
                    return .handled
                }
            }
            if ISADMA.ports.allSatisfy({ dispatcher.pioOwner(port: $0) == nil }) {
                let dma = ISADMA()
                try dma.register(on: dispatcher)
                devices.dma = dma
            }
            if dispatcher.pioOwner(port: I8042.dataPort) == nil, dispatcher.pioOwner(port: I8042.commandPort) == nil {
                let i8042 = I8042()
                try i8042.register(on: dispatcher)
                devices.i8042 = i8042
                if options.useIRQChip {
                    i8042.connectInterrupts { [vm] line, level in try? vm.setIRQLine(line, level: level) }
                }
            }
        } catch { throw LauncherError(.host, "\(error)") }
        try registerParallelPort(on: dispatcher, vm: vm)
    }

    /// LPT1 where no plugin holds its ports, its printed bytes to `--parallel`'s target.
    /// A plugin that took a port is not displaced; with `--parallel` the user asked for
    /// both, so say so.
    private func registerParallelPort(on dispatcher: ExitDispatcher, vm: VirtualMachine) throws(LauncherError) {
        if let taken = ParallelPort.ports.first(where: { dispatcher.pioOwner(port: $0) != nil }) {
            guard options.parallel == .none else {
                throw LauncherError(.usage, "--parallel: port \(hex(taken)) is already taken by \(dispatcher.pioOwner(port: taken) ?? "a plugin")")
            }
            return
        }
        let lpt = ParallelPort()
        if options.parallel != .none {
            let printer = try OutputSink(options.parallel, device: "parallel port (LPT1)", flag: "--parallel",
                                         fifoNote: "the parallel port does not wait for a reader")
            lpt.connectPrinter { printer.emit($0) }
        }
        do { try lpt.register(on: dispatcher) } catch { throw LauncherError(.host, "\(error)") }
        devices.parallel = lpt
        if options.useIRQChip {
            lpt.connectInterrupt { [vm] level in try? vm.setIRQLine(ParallelPort.irqLine, level: level) }
        }
    }

    /// Port 0xe9 when `--debugcon` names a target, with or without the default plugins. A
    /// plugin that took the port is not displaced: the user asked for both, so say so.
    func registerDebugConsole(on dispatcher: ExitDispatcher) throws(LauncherError) {
        guard options.debugcon != .none else { return }
        if let owner = dispatcher.pioOwner(port: DebugConsole.port) {
            throw LauncherError(.usage, "--debugcon: port 0xe9 is already taken by \(owner)")
        }
        let debugcon = try DebugConsole(options.debugcon)
        do { try debugcon.register(on: dispatcher) } catch { throw LauncherError(.host, "\(error)") }
    }

    /// The IDE primary channel with `--hda`'s image as its master (`ATADisk`), with or
    /// without the default plugins; a plugin that took its ports is not displaced.
    /// Without `--hda` the channel is there and empty, as on QEMU's `pc`
    /// (`IDEChannel.registerEmpty`), where no plugin holds its ports. The secondary holds
    /// QEMU's empty CD-ROM drive (`ATAPIDrive`), likewise, and the floppy controller
    /// with its empty drive A (`FloppyController`).
    func registerDisk(on dispatcher: ExitDispatcher, vm: VirtualMachine) throws(LauncherError) {
        if FloppyController.ports.allSatisfy({ dispatcher.pioOwner(port: $0) == nil }) {
            let floppy = FloppyController()
            do { try floppy.register(on: dispatcher) } catch { throw LauncherError(.host, "\(error)") }
            if options.useIRQChip {
                // A failed raise (the VM closing) has no one to tell: the run is ending.
                floppy.connectInterrupt { [vm] level in try? vm.setIRQLine(FloppyController.irqLine, level: level) }
            }
            devices.floppy = floppy
        }
        if dispatcher.pioOwner(port: ATAPIDrive.basePort, count: 8) == nil, dispatcher.pioOwner(port: ATAPIDrive.controlPort) == nil {
            let drive = ATAPIDrive()
            do { try drive.register(on: dispatcher) } catch { throw LauncherError(.host, "\(error)") }
            if options.useIRQChip {
                drive.connectInterrupt { [vm] level in try? vm.setIRQLine(ATAPIDrive.irqLine, level: level) }
            }
            devices.cdrom = drive
        }
        guard let path = options.hda else {
            try registerEmptyChannel(on: dispatcher, base: ATADisk.basePort, control: ATADisk.controlPort, name: "primary")
            return
        }
        for (port, count) in [(ATADisk.basePort, UInt16(8)), (ATADisk.controlPort, UInt16(1))] {
            if let owner = dispatcher.pioOwner(port: port, count: count) {
                throw LauncherError(.usage, "--hda: port \(hex(port)) is already taken by \(owner)")
            }
        }
        let disk = ATADisk(try DiskImage(path: path, readOnly: options.hdaReadOnly))
        do { try disk.register(on: dispatcher) } catch { throw LauncherError(.host, "\(error)") }
        if options.useIRQChip {
            // A failed raise (the VM closing) has no one to tell: the run is ending.
            disk.connectInterrupt { [vm] level in try? vm.setIRQLine(ATADisk.irqLine, level: level) }
        }
        devices.ata = disk
        // The CMOS describes the disk to the BIOS as QEMU's `pc_cmos_init_late` does (when
        // the built-in RTC serves ports 0x70/0x71).
        devices.rtc?.setHardDisk(disk.geometry)
    }

    /// `--vga std`'s Bochs VBE display, with or without the default plugins, over the
    /// `vga-vram` region the machine was built (or restored) with; a plugin that took one
    /// of its ports is not displaced.
    func registerDisplay(on dispatcher: ExitDispatcher, vm: VirtualMachine) throws(LauncherError) {
        guard options.vgaStd else { return }
        for port in [BochsDisplay.indexPort] + BochsDisplay.dataPorts {
            if let owner = dispatcher.pioOwner(port: port) { throw LauncherError(.usage, "--vga std: port \(hex(port)) is already taken by \(owner)") }
        }
        do {
            let vram = try vm.memory.hostPointer(BochsDisplay.framebufferAddress, length: BochsDisplay.vramSize)
            let display = BochsDisplay(vram: vram, vga: devices.vga)
            try display.register(on: dispatcher)
            devices.bochs = display
        } catch { throw LauncherError(.host, "--vga std: \(error)") }
    }

    /// An empty IDE channel where no plugin holds its ports.
    private func registerEmptyChannel(on dispatcher: ExitDispatcher, base: UInt16, control: UInt16, name: String) throws(LauncherError) {
        guard dispatcher.pioOwner(port: base, count: 8) == nil, dispatcher.pioOwner(port: control) == nil else { return }
        do { try IDEChannel.registerEmpty(on: dispatcher, base: base, control: control, name: name) } catch { throw LauncherError(.host, "\(error)") }
    }

    /// The AsyncPF plugin (a default, or `--plugin AsyncPF[,...]`) routes its three MSRs
    /// to user space when it loads, after the irqchip exists, where the filter's SRCU wait
    /// costs a grace period (6-14 ms). Routed here first, before the irqchip, the plugin's
    /// request finds them routed and costs nothing (`VirtualMachine.denyMSRs`). Only when
    /// that plugin will load: otherwise the guest's writes to these MSRs must stay with
    /// the kernel.
    func routeDefaultMSRs(_ vm: VirtualMachine) throws(VMMError) {
        let named = options.plugins.contains { Self.split($0).0 == "AsyncPF" }
        guard !options.noDefaultPlugins || named, (try? PluginSearchPath.standard().resolve("AsyncPF")) != nil else { return }
        try vm.enableUserSpaceMSRExits(reasons: UInt64(KVM_MSR_EXIT_REASON_FILTER))
        try vm.denyMSRs(AsyncPFABI.msrs)
    }

    /// "PATH,key=value,key=value" -> ("PATH", "key=value,key=value").
    static func split(_ spec: String) -> (String, String) {
        guard let comma = spec.firstIndex(of: ",") else { return (spec, "") }
        return (String(spec[..<comma]), String(spec[spec.index(after: comma)...]))
    }
}

extension Launcher {
    /// When a loaded plugin supplies pages (a memory-fault handler not flagged zero-fill,
    /// e.g. a snapshot), the RAM it covers becomes demand-paged: every page there the
    /// loader did not write comes from the plugins (userfaultfd, blocking mode). The rest
    /// — all of it with only the fill=zero default — is the kernel's demand-zero memory.
    func attachPager(_ plugins: PluginHost, vm: VirtualMachine, dispatcher: ExitDispatcher) throws(LauncherError) -> DemandPager? {
        let ranges = plugins.pageSourceRanges
        guard !ranges.isEmpty else { return nil }
        do {
            let pager = try DemandPager(memory: vm.memory, region: "ram", source: PluginPageSource(plugins), only: ranges)
            guard pager.pagedPages > 0 else { return nil }
            pager.readAheadPages = options.readAheadPages
            try pager.attach(to: dispatcher, vcpus: vm.vcpus)
            log.info("guest RAM is demand-paged through the memory-fault plugins (\(pager.pagedPages) pages)")
            return pager
        } catch {
            throw LauncherError(.host, "cannot demand-page guest RAM: \(error)")
        }
    }
}

extension Launcher {
    /// When a loaded plugin handles async page faults (the AsyncPF default), ring-3
    /// faults on demand-paged RAM reach it as PAGE_MISSING and it gets the pager/1
    /// service. Call after `attachPager`; close the result after the run.
    func attachAsyncPF(_ plugins: PluginHost, pager: DemandPager?) throws(LauncherError) -> PluginAsyncPF? {
        guard let pager, plugins.handlesAsyncPF else { return nil }
        do {
            let bridge = try PluginAsyncPF(pager: pager)
            try bridge.attach(to: plugins)
            return bridge
        } catch {
            throw LauncherError(.host, "cannot attach async page faults to the demand pager: \(error)")
        }
    }

    /// The `--stats` line for async page faults (nil without the AsyncPF plugin): what the
    /// guest was sent, and how many of the faults came from KVM's own async-PF worker
    /// (in-kernel LAPIC) and were handed to the halted vCPU.
    static func asyncPFReport(_ asyncPF: PluginAsyncPF?) -> String {
        guard let asyncPF else { return "" }
        return "async page faults: \(asyncPF.asyncFaults) not present, \(asyncPF.backgroundInstalls) ready (\(asyncPF.pager.statistics.kernelWorkerFaults) handed over from KVM's own async-PF worker)\n"
    }
}
