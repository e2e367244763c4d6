import ArgumentParser

// The launcher's subcommands as ArgumentParser declares them: names, help and types.
// Parsing only: each hands its values to the launcher as items (`emit`), which runs them
// (Examples/Launcher). vmm_command_line.h says why this is a library of its own.

/// The exit statuses, set by the launcher for each call (it owns the numbers).
nonisolated(unsafe) var statusHelp = ""
nonisolated(unsafe) var ctlStatusHelp = ""

/// Where a parsed command's items go: `(key, value)`, nil for a flag that is set.
/// An option that takes one value is still declared as an array and each occurrence
/// emitted: ArgumentParser keeps the last of a repeated single-valued option in silence
/// (`--memory 1G --memory 3M` ran with 3M), and the launcher refuses the repeat naming it
/// (`ParsedCommand.repeated`). The help reads the same (only `--plugin` and `--fw-cfg`
/// say "repeatable").
typealias Emit = (String, String?) -> Void

protocol EmittingArguments: ParsableCommand {
    func emit(_ item: Emit)
}

struct VMMArguments: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: "vmm",
            abstract: "Run guests on Linux KVM with VMMKit.",
            discussion: "Exit status: the guest's debug-exit code v gives (v << 1) | 1 (QEMU's isa-debug-exit); otherwise \(statusHelp).",
            subcommands: [RunArguments.self, RestoreArguments.self, PluginsArguments.self, CtlArguments.self])
    }
}

struct RunArguments: EmittingArguments {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Load a guest image and run it until the guest stops.")

    @Argument(help: "ELF64, Multiboot v1 (ELF32), PVH (an ELF with Xen's entry note), Linux bzImage or flat binary (with --load-addr).")
    var image: String?
    @Option(help: "Guest RAM, e.g. 64M, 1G, 1T (as QEMU's -m: K to E, a bare number is MiB; default 128M, as QEMU).") var memory: [String] = []
    @Option(help: "Number of vCPUs, 1 to 255 (default 1).") var vcpus: [String] = []
    @Option(name: .customLong("read-ahead"), help: "Demand paging: pages installed ahead of a sequential fault, 0 to 256 (default 0).") var readAhead: [String] = []
    @Option(help: "kernel (LAPIC/IOAPIC/PIC/PIT in KVM, described to the guest by MP and ACPI tables; the default) or none (HLT exits to the launcher; one vCPU only; no tables).") var irqchip: [String] = []
    @Option(name: .customLong("plugin"), help: "PATH[,key=value...]; repeatable.") var plugins: [String] = []
    @Flag(name: .customLong("no-default-plugins"), help: "Do not load the bundled plugins.") var noDefaultPlugins = false
    @Option(help: "JSON file holding any of these options; flags override it.") var config: [String] = []
    @Option(help: "stdio, file:PATH or none (default stdio).") var serial: [String] = []
    @Option(help: "QEMU's -debugcon: bytes written to port 0xe9 go to stdio, file:PATH or none (default none: no device).") var debugcon: [String] = []
    @Option(help: "QEMU's -parallel: bytes printed through LPT1 (ports 0x378-0x37f) go to stdio, file:PATH or none (default none: dropped, as QEMU's null backend; the port is there either way).") var parallel: [String] = []
    @Option(name: .customLong("vga-text"), help: "When the run ends, write the VGA text screen (80x25 at 0xb8000) as text to stdio, file:PATH or none (default none).") var vgaText: [String] = []
    @Option(help: "std: QEMU's -vga std graphics, the Bochs VBE display (ports 0x1ce-0x1d0, a 16 MiB framebuffer at 0xfd000000, PCI 00:02.0); text (the default): the text screen's registers only.") var vga: [String] = []
    @Option(help: "With --vga std: when the run ends, write the graphics screen as a PPM image (QEMU's screendump) to stdio, file:PATH or none (default none).") var screendump: [String] = []
    @Option(help: "exits: one line per exit on stderr.") var trace: [String] = []
    @Flag(help: "Print exit counts and time per kind at the end (stderr).") var stats = false
    @Flag(name: .customLong("strict-io"), help: "Stop on I/O nobody claims (status 18) instead of reading all-ones and dropping writes.") var strictIO = false
    @Option(name: .customLong("max-seconds"), help: "Stop the guest after this many seconds (decimal, 0.000001 to 1000000000) of wall-clock time, paused time included (status 16).") var maxSeconds: [String] = []
    // QEMU's -append takes "-flag value" too: the next argument is the value whatever it looks like.
    @Option(parsing: .unconditionalSingleValue, help: "The kernel's command line: Multiboot, PVH, Linux (may begin with '-').") var append: [String] = []
    @Option(help: "Modules, as QEMU's -initrd: FILE[ ARGS][,FILE...] for Multiboot (',,' for a comma in a name), one FILE for PVH and Linux.") var initrd: [String] = []
    @Option(help: "QEMU's -hda: a raw disk image (whole 512-byte sectors) as the IDE primary master (ports 0x1f0-0x1f7, 0x3f6, IRQ 14), read and written in place.") var hda: [String] = []
    @Flag(name: .customLong("hda-readonly"), help: "Open the --hda image read-only: the guest's writes are aborted (QEMU's readonly=on).") var hdaReadonly = false
    @Option(name: .customLong("load-addr"), help: "Flat binary: guest-physical load address.") var loadAddr: [String] = []
    @Option(help: "Flat binary: entry address (default: the load address).") var entry: [String] = []
    @Option(help: "Flat binary: 16 (real mode) or 64 (long mode, default).") var mode: [String] = []
    @Option(name: .customLong("handler-budget"), help: "Seconds a plugin call (a handler, init, a state save) may run before the run ends with status 8 (decimal, 0.000001 to 86400; default 10).")
    var handlerBudget: [String] = []
    @Flag(name: .customLong("no-seccomp"), help: "Run vCPU threads without the seccomp allow-list (Docs/Seccomp.md).") var noSeccomp = false
    @Flag(name: .customLong("no-hpet"), help: "A machine without the HPET (0xfed00000) and its ACPI table, as QEMU's -machine hpet=off.") var noHPET = false
    @Flag(name: .customLong("pvpanic"), help: "QEMU's pvpanic on port 0x505 (-device pvpanic): a guest's panic ends the run with status 26.") var pvpanic = false
    @Option(help: "The machine's UUID, 8-4-4-4-12 hex digits (SMBIOS and fw_cfg), as QEMU's -uuid.") var uuid: [String] = []
    @Option(name: .customLong("fw-cfg"), help: "[name=]NAME,file=PATH or [name=]NAME,string=TEXT: a file in fw_cfg's directory, as QEMU's -fw_cfg; repeatable.")
    var fwCfg: [String] = []
    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning (default), error, critical.") var logLevel: [String] = []
    @Option(name: .customLong("snapshot-on-stop"), help: "When --max-seconds or a stop request ends the run, save a snapshot into this new directory (status 22); vmm restore DIR resumes it.") var snapshotOnStop: [String] = []
    @Option(name: .customLong("api-sock"), help: "Serve the control API (HTTP/JSON) on this Unix socket.") var apiSock: [String] = []

    func emit(_ item: Emit) {
        item("command", "run")
        if let image { item("image", image) }
        for v in memory { item("memory", v) }
        for v in vcpus { item("vcpus", v) }
        for v in readAhead { item("read-ahead", v) }
        for v in irqchip { item("irqchip", v) }
        for p in plugins { item("plugin", p) }
        if noDefaultPlugins { item("no-default-plugins", nil) }
        for v in config { item("config", v) }
        for v in serial { item("serial", v) }
        for v in debugcon { item("debugcon", v) }
        for v in parallel { item("parallel", v) }
        for v in vgaText { item("vga-text", v) }
        for v in vga { item("vga", v) }
        for v in screendump { item("screendump", v) }
        for v in trace { item("trace", v) }
        if stats { item("stats", nil) }
        if strictIO { item("strict-io", nil) }
        for v in maxSeconds { item("max-seconds", v) }
        for v in append { item("append", v) }
        for v in initrd { item("initrd", v) }
        for v in hda { item("hda", v) }
        if hdaReadonly { item("hda-readonly", nil) }
        for v in loadAddr { item("load-addr", v) }
        for v in entry { item("entry", v) }
        for v in mode { item("mode", v) }
        for v in handlerBudget { item("handler-budget", v) }
        if noSeccomp { item("no-seccomp", nil) }
        if noHPET { item("no-hpet", nil) }
        for f in fwCfg { item("fw-cfg", f) }
        if pvpanic { item("pvpanic", nil) }
        for v in uuid { item("uuid", v) }
        for v in logLevel { item("log-level", v) }
        for v in snapshotOnStop { item("snapshot-on-stop", v) }
        for v in apiSock { item("api-sock", v) }
    }
}

struct RestoreArguments: EmittingArguments {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Resume a snapshot of vmm run (--snapshot-on-stop) in this process and run it to the end.",
        discussion: "The machine (RAM, vCPUs, irqchip, plugins and their configs) is rebuilt from the snapshot; exit statuses as vmm run. A damaged, incompatible or incomplete snapshot, or one naming plugin libraries, plugin configs, a console, debug console or parallel port file or a disk image without --trust-snapshot: status 24, nothing on disk changed.")

    @Argument(help: "The snapshot directory.") var dir: String
    @Flag(help: "Copy all memory in before the first instruction (default: page it in lazily through userfaultfd).") var eager = false
    @Option(help: "stdio, file:PATH or none (default: as saved).") var serial: [String] = []
    @Option(help: "Where port 0xe9's bytes go, as vmm run --debugcon, if the snapshot's machine has the device (default: as saved).") var debugcon: [String] = []
    @Option(help: "Where LPT1's printed bytes go, as vmm run --parallel (default: as saved).") var parallel: [String] = []
    @Option(help: "The disk image of a machine run with --hda, at this path (the same size; default: the saved path, with --trust-snapshot).") var hda: [String] = []
    @Flag(name: .customLong("hda-readonly"), help: "Open the disk image read-only whatever the snapshot says: the guest's writes are aborted (a snapshot cannot open an image for writing the user wants kept).") var hdaReadonly = false
    @Option(name: .customLong("vga-text"), help: "As vmm run --vga-text (default none; a snapshot does not keep it).") var vgaText: [String] = []
    @Option(help: "As vmm run --screendump, for a machine run with --vga std (default none; a snapshot does not keep it).") var screendump: [String] = []
    @Option(name: .customLong("max-seconds"), help: "Stop the guest after this many seconds (decimal, 0.000001 to 1000000000) of wall-clock time, paused time included (status 16).") var maxSeconds: [String] = []
    @Flag(help: "Print exit counts and pages fetched at the end (stderr).") var stats = false
    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning (default), error, critical.") var logLevel: [String] = []
    @Option(name: .customLong("api-sock"), help: "Serve the control API (HTTP/JSON) on this Unix socket.") var apiSock: [String] = []
    @Option(name: .customLong("handler-budget"), help: "Seconds a plugin call (a handler, a state restore) may run before the run ends with status 8 (decimal, 0.000001 to 86400; default 10).") var handlerBudget: [String] = []
    @Flag(name: .customLong("no-seccomp"), help: "Run vCPU threads without the seccomp allow-list (as vmm run --no-seccomp).") var noSeccomp = false
    @Flag(name: .customLong("trust-snapshot"), help: "Load the plugins the snapshot names by path or with a config, and open the output files (console, debug console, parallel port) or disk image it names (without it such a snapshot is refused, status 24: one from elsewhere could name any library or file).") var trustSnapshot = false

    func emit(_ item: Emit) {
        item("command", "restore")
        item("dir", dir)
        if eager { item("eager", nil) }
        for v in serial { item("serial", v) }
        for v in debugcon { item("debugcon", v) }
        for v in parallel { item("parallel", v) }
        for v in hda { item("hda", v) }
        if hdaReadonly { item("hda-readonly", nil) }
        for v in vgaText { item("vga-text", v) }
        for v in screendump { item("screendump", v) }
        for v in maxSeconds { item("max-seconds", v) }
        if stats { item("stats", nil) }
        for v in logLevel { item("log-level", v) }
        for v in apiSock { item("api-sock", v) }
        for v in handlerBudget { item("handler-budget", v) }
        if noSeccomp { item("no-seccomp", nil) }
        if trustSnapshot { item("trust-snapshot", nil) }
    }
}

struct PluginsArguments: EmittingArguments {
    static let configuration = CommandConfiguration(
        commandName: "plugins",
        abstract: "List the plugins found on the search path (or in PATH).",
        discussion: "Exit status 8 when PATH is a file and it is refused.")

    @Flag(help: "Also list handlers: runs each candidate's init (empty config) in a child process.")
    var probe = false
    @Option(name: .customLong("probe-timeout"), help: "Seconds a candidate's load and init may take under --probe (decimal, 0.000001 to 3600; default 10).")
    var probeTimeout: [String] = []
    @Option(name: .customLong("probe-child"), help: .hidden) var probeChild: [String] = []
    @Argument(help: "A plugin file or a directory to list instead of the search path.")
    var path: String?

    func emit(_ item: Emit) {
        item("command", "plugins")
        if probe { item("probe", nil) }
        for v in probeTimeout { item("probe-timeout", v) }
        for v in probeChild { item("probe-child", v) }
        if let path { item("path", path) }
    }
}

struct CtlArguments: EmittingArguments {
    static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: "ctl",
            abstract: "Control a VM started with 'vmm run --api-sock PATH'.",
            discussion: """
            Commands: info, pause, resume, stop, power-button (the ACPI power button, as QEMU's system_powerdown), ctrl-alt-del (Firecracker's SendCtrlAltDel), sendkey KEYS... (key combinations by QEMU's names, as its sendkey: sendkey shift-h i ret), type TEXT (the text typed on a US keyboard, newline as Enter), metrics, screen (the VGA text screen as text, as QEMU's screendump), screendump FILE (the --vga std graphics screen as a PPM, which the VMM writes to FILE, as QEMU's screendump), mouse DX DY [BUTTON...] (moves the PS/2 mouse, x right and y down, with the buttons named held: left, right, middle, side, extra; a negative number after --), snapshot DIR (the VM must be paused). A relative FILE or DIR is taken from where ctl runs. The JSON answer is printed on stdout (for screen, its text).
            Exit status: \(ctlStatusHelp).
            """)
    }

    @Argument(help: "The control socket given to 'vmm run --api-sock'.") var socket: String
    @Argument(help: "info, pause, resume, stop, power-button, ctrl-alt-del, sendkey, type, metrics, screen or snapshot.") var command: String
    @Argument(help: "snapshot: the directory to write; sendkey: the key combinations; type: the text; screendump: the file; mouse: DX DY and the buttons held.") var operands: [String] = []

    func emit(_ item: Emit) {
        item("command", "ctl")
        item("socket", socket)
        item("action", command)
        for o in operands { item("operand", o) }
    }
}
