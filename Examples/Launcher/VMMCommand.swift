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

    func run() throws {
        StartupTrace.mark("parsed")
        let options = try resolve()
        StartupTrace.mark("resolved")
        let status = try Launcher(options: options).run()
        Glibc.exit(status)
    }

    /// Config file first, then every flag given on the command line.
    func resolve() throws(LauncherError) -> LaunchOptions {
        var o = try config.map { path throws(LauncherError) in try LaunchOptions.load(configFile: path) } ?? LaunchOptions()
        if let image { o.image = image }
        if let memory {
            guard let size = Sizes.parseMemory(memory) else { throw LauncherError(.usage, "--memory: not a size: \(memory) (e.g. 64M)") }
            o.memory = size
        }
        if let readAhead {
            guard (0...LaunchOptions.maxReadAheadPages).contains(readAhead) else {
                throw LauncherError(.usage, "--read-ahead must be from 0 to \(LaunchOptions.maxReadAheadPages) pages, not \(readAhead)")
            }
            o.readAheadPages = readAhead
        }
        if let vcpus {
            guard (1...64).contains(vcpus) else { throw LauncherError(.usage, "--vcpus must be from 1 to 64, not \(vcpus)") }
            o.vcpus = vcpus
        }
        if let irqchip {
            guard irqchip == "kernel" || irqchip == "none" else { throw LauncherError(.usage, "--irqchip must be kernel or none, not \(irqchip)") }
            o.irqchip = irqchip == "kernel"
        }
        o.plugins += plugins
        if noDefaultPlugins { o.noDefaultPlugins = true }
        if let serial {
            guard let target = SerialTarget(serial) else { throw LauncherError(.usage, "--serial must be stdio, none or file:PATH, not \(serial)") }
            o.serial = target
        }
        if let trace {
            guard trace == "exits" else { throw LauncherError(.usage, "--trace must be exits, not \(trace)") }
            o.trace = true
        }
        if stats { o.stats = true }
        if strictIO { o.strictIO = true }
        if let maxSeconds {
            guard LaunchOptions.validSeconds(maxSeconds) else {
                throw LauncherError(.usage, "--max-seconds must be a positive number of seconds, at most \(Int(LaunchOptions.maxSecondsLimit)), not \(maxSeconds)")
            }
            o.maxSeconds = maxSeconds
        }
        if let snapshotOnStop { o.snapshotOnStop = snapshotOnStop }
        if let append { o.append = append }
        if let initrd { o.initrd = initrd }
        if let loadAddr {
            guard let a = Sizes.parseAddress(loadAddr) else { throw LauncherError(.usage, "--load-addr: not an address: \(loadAddr)") }
            o.loadAddress = a
        }
        if let entry {
            guard let a = Sizes.parseAddress(entry) else { throw LauncherError(.usage, "--entry: not an address: \(entry)") }
            o.entry = a
        }
        if let mode {
            guard mode == 16 || mode == 64 else { throw LauncherError(.usage, "--mode must be 16 or 64, not \(mode)") }
            o.mode = mode
        }
        if let logLevel {
            guard LaunchOptions.logLevels.contains(logLevel) else {
                throw LauncherError(.usage, "--log-level must be one of \(LaunchOptions.logLevels.joined(separator: ", "))")
            }
            o.logLevel = logLevel
        }
        if let handlerBudget {
            guard LaunchOptions.validBudget(handlerBudget) else {
                throw LauncherError(.usage, "--handler-budget must be more than 0 and at most 86400 seconds")
            }
            o.handlerBudget = handlerBudget
        }
        if noSeccomp { o.noSeccomp = true }
        if let apiSock { o.apiSock = apiSock }
        // A flag given overrides the file's key: errors in it name the flag.
        let flagged: [(String, Bool)] = [("memory", memory != nil), ("vcpus", vcpus != nil), ("irqchip", irqchip != nil),
                                         ("maxSeconds", maxSeconds != nil), ("append", append != nil),
                                         ("loadAddr", loadAddr != nil), ("entry", entry != nil), ("mode", mode != nil)]
        for (key, given) in flagged where given { o.fromConfig.remove(key) }
        guard o.image != nil else { throw LauncherError(.usage, "no image: give IMAGE or 'image' in --config") }
        return o
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
