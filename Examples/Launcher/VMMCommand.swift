import ArgumentParser
import Glibc

@main
struct VMM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vmm",
        abstract: "Run guests on Linux KVM with VMMKit.",
        discussion: """
        Exit status: the guest's debug-exit code v gives (v << 1) | 1 (QEMU's isa-debug-exit);
        otherwise \(LauncherStatus.allCases.map { "\($0.rawValue) \($0.meaning)" }.joined(separator: "; ")).
        """,
        subcommands: [Run.self, Restore.self, Plugins.self, Ctl.self]
    )

    /// Usage errors exit with the launcher's documented status 2 (not ArgumentParser's 64).
    static func main() {
        StartupTrace.mark("main")
        do {
            let args = Array(CommandLine.arguments.dropFirst())
            if let flags = RunFlags.fastParse(args) {
                #if DEBUG
                checkFastParse(flags, args)
                #endif
                try flags.launch()
            }
            var command = try parseAsRoot()
            try command.run()
        } catch let error as LauncherError {
            ExitStats.err("vmm: \(error.message)\n")
            Glibc.exit(error.status.rawValue)
        } catch {
            let code = exitCode(for: error)
            let message = fullMessage(for: error)
            if code == .success {
                print(message)
                Glibc.exit(0)
            }
            ExitStats.err(message.split(separator: "\n").first.map { "vmm: \($0)\n" } ?? "vmm: error\n")
            Glibc.exit(LauncherStatus.usage.rawValue)
        }
    }
}

#if DEBUG
/// Debug builds (the suite's launcher) check every fast parse against ArgumentParser's.
func checkFastParse(_ flags: RunFlags, _ args: [String]) {
    let parsed = try? Run.parse(Array(args.dropFirst()))
    precondition(parsed?.flags == flags, "vmm: the fast parse of \(args) differs from ArgumentParser's")
}
#endif

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Load a guest image and run it until the guest stops.")

    @Argument(help: "ELF64, Multiboot v1 (ELF32) or flat binary (with --load-addr).")
    var image: String?
    @Option(help: "Guest RAM, e.g. 64M, 1G (default 64M).") var memory: String?
    @Option(help: "Number of vCPUs (default 1).") var vcpus: Int?
    @Option(name: .customLong("read-ahead"), help: "Demand paging: pages installed ahead of a sequential fault, 0 to 256 (default 0).") var readAhead: Int?
    @Option(help: "kernel (LAPIC/IOAPIC/PIC/PIT in KVM, the default) or none (HLT exits to the launcher; one vCPU only).") var irqchip: String?
    @Option(name: .customLong("plugin"), help: "PATH[,key=value...]; repeatable.") var plugins: [String] = []
    @Flag(name: .customLong("no-default-plugins"), help: "Do not load the bundled plugins.") var noDefaultPlugins = false
    @Option(help: "JSON file holding any of these options; flags override it.") var config: String?
    @Option(help: "stdio, file:PATH or none (default stdio).") var serial: String?
    @Option(help: "exits: one line per exit on stderr.") var trace: String?
    @Flag(help: "Print exit counts and time per kind at the end (stderr).") var stats = false
    @Flag(name: .customLong("strict-io"), help: "Stop on I/O nobody claims (status 18) instead of reading all-ones and dropping writes.") var strictIO = false
    @Option(name: .customLong("max-seconds"), help: "Stop the guest after this long (status 16).") var maxSeconds: Double?
    // QEMU's -append takes "-flag value" too: the next argument is the value whatever it looks like.
    @Option(parsing: .unconditional, help: "Multiboot command line (may begin with '-').") var append: String?
    @Option(help: "A file passed as Multiboot module.") var initrd: String?
    @Option(name: .customLong("load-addr"), help: "Flat binary: guest-physical load address.") var loadAddr: String?
    @Option(help: "Flat binary: entry address (default: the load address).") var entry: String?
    @Option(help: "Flat binary: 16 (real mode) or 64 (long mode, default).") var mode: Int?
    @Option(name: .customLong("handler-budget"), help: "Seconds a plugin handler call may run before the run ends with status 8 (default 10).")
    var handlerBudget: Double?
    @Flag(name: .customLong("no-seccomp"), help: "Run vCPU threads without the seccomp allow-list (Docs/Seccomp.md).") var noSeccomp = false
    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning (default), error, critical.") var logLevel: String?
    @Option(name: .customLong("snapshot-on-stop"), help: "When --max-seconds or a stop request ends the run, save a snapshot into this new directory (status 22); vmm restore DIR resumes it.") var snapshotOnStop: String?

    @Option(name: .customLong("api-sock"), help: "Serve the control API (HTTP/JSON) on this Unix socket.") var apiSock: String?

    /// The values given, without ArgumentParser's wrappers.
    var flags: RunFlags {
        RunFlags(image: image, memory: memory, vcpus: vcpus, readAhead: readAhead, irqchip: irqchip, plugins: plugins,
                 noDefaultPlugins: noDefaultPlugins, config: config, serial: serial, trace: trace, stats: stats,
                 strictIO: strictIO, maxSeconds: maxSeconds, append: append, initrd: initrd, loadAddr: loadAddr,
                 entry: entry, mode: mode, handlerBudget: handlerBudget, noSeccomp: noSeccomp, logLevel: logLevel,
                 snapshotOnStop: snapshotOnStop, apiSock: apiSock)
    }

    func run() throws {
        try flags.launch()
    }
}

struct Restore: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Resume a snapshot of vmm run (--snapshot-on-stop) in this process and run it to the end.",
        discussion: "The machine (RAM, vCPUs, irqchip, plugins and their configs) is rebuilt from the snapshot; exit statuses as vmm run. A damaged, incompatible or incomplete snapshot: status 24, nothing on disk changed.")

    @Argument(help: "The snapshot directory.") var dir: String
    @Flag(help: "Copy all memory in before the first instruction (default: page it in lazily through userfaultfd).") var eager = false
    @Option(help: "stdio, file:PATH or none (default: as saved).") var serial: String?
    @Option(name: .customLong("max-seconds"), help: "Stop the guest after this long (status 16).") var maxSeconds: Double?
    @Flag(help: "Print exit counts and pages fetched at the end (stderr).") var stats = false
    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning (default), error, critical.") var logLevel: String?
    @Option(name: .customLong("api-sock"), help: "Serve the control API (HTTP/JSON) on this Unix socket.") var apiSock: String?

    func run() throws {
        var r = RestoreRequest(dir: dir, eager: eager, stats: stats, apiSock: apiSock)
        if let serial {
            guard let target = SerialTarget(serial) else { throw LauncherError(.usage, "--serial must be stdio, none or file:PATH, not \(serial)") }
            r.serial = target
        }
        if let maxSeconds {
            guard maxSeconds > 0 else { throw LauncherError(.usage, "--max-seconds must be positive") }
            r.maxSeconds = maxSeconds
        }
        if let logLevel {
            guard LaunchOptions.logLevels.contains(logLevel) else {
                throw LauncherError(.usage, "--log-level must be one of \(LaunchOptions.logLevels.joined(separator: ", "))")
            }
            r.logLevel = logLevel
        }
        Glibc.exit(try Launcher.restore(r))
    }
}
