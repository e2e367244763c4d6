import Glibc
import VMMKit

/// What `vmm run` was given, as plain values: filled by ArgumentParser (`Run`) or, for
/// the common forms, by `RunFlags.fastParse` (RunFastParse.swift), then resolved here.
struct RunFlags: Equatable {
    var image: String?
    var memory: String?
    // Numbers as given: the launcher reads them (FlagValues), not the parsers.
    var vcpus: String?
    var readAhead: String?
    var irqchip: String?
    var plugins: [String] = []
    var noDefaultPlugins = false
    var config: String?
    var serial: String?
    var debugcon: String?
    var parallel: String?
    var vgaText: String?
    var vga: String?
    var screendump: String?
    var trace: String?
    var stats = false
    var strictIO = false
    var maxSeconds: String?
    var append: String?
    var initrd: String?
    var hda: String?
    var hdaReadOnly = false
    var loadAddr: String?
    var entry: String?
    var mode: String?
    var handlerBudget: String?
    var noSeccomp = false
    var noHPET = false
    var fwCfg: [String] = []
    var pvpanic = false
    var uuid: String?
    var logLevel: String?
    var snapshotOnStop: String?
    var apiSock: String?

    /// Resolves the options and runs the guest; never returns (exit status of the run).
    func launch() throws(LauncherError) -> Never {
        StartupTrace.mark("parsed")
        let options = try resolve()
        StartupTrace.mark("resolved")
        SignalStop.exit(try Launcher(options: options).run())
    }

    /// Config file first, then every flag given on the command line.
    func resolve() throws(LauncherError) -> LaunchOptions {
        var o = try config.map { path throws(LauncherError) in try LaunchOptions.load(configFile: path) } ?? LaunchOptions()
        if let image { o.image = image }
        if let memory {
            guard let size = Sizes.parseMemory(memory) else { throw LauncherError(.usage, "--memory: not a size: \(memory.quotedForMessage) (e.g. 64M)") }
            o.memory = size
        }
        if let readAhead {
            o.readAheadPages = try FlagValues.integer(flag: "read-ahead", readAhead, 0...LaunchOptions.maxReadAheadPages, unit: " pages")
        }
        if let vcpus { o.vcpus = try FlagValues.integer(flag: "vcpus", vcpus, 1...LaunchOptions.maxVCPUs) }
        if let irqchip {
            guard irqchip == "kernel" || irqchip == "none" else { throw LauncherError(.usage, "--irqchip must be kernel or none, not \(irqchip.quotedForMessage)") }
            o.irqchip = irqchip == "kernel"
        }
        o.plugins += plugins
        if noDefaultPlugins { o.noDefaultPlugins = true }
        if let serial { o.serial = try SerialTarget(flag: "--serial", serial) }
        if let debugcon { o.debugcon = try SerialTarget(flag: "--debugcon", debugcon) }
        if let parallel { o.parallel = try SerialTarget(flag: "--parallel", parallel) }
        if let vgaText { o.vgaText = try SerialTarget(flag: "--vga-text", vgaText) }
        if let vga {
            guard vga == "std" || vga == "text" else { throw LauncherError(.usage, "--vga must be std or text, not \(vga.quotedForMessage)") }
            o.vgaStd = vga == "std"
        }
        if let screendump { o.screendump = try SerialTarget(flag: "--screendump", screendump) }
        if let trace {
            guard trace == "exits" else { throw LauncherError(.usage, "--trace must be exits, not \(trace.quotedForMessage)") }
            o.trace = true
        }
        if stats { o.stats = true }
        if strictIO { o.strictIO = true }
        if let maxSeconds {
            o.maxSeconds = try FlagValues.seconds(flag: "max-seconds", maxSeconds, max: LaunchOptions.maxSecondsLimit)
            o.maxSecondsText = maxSeconds
        }
        if let snapshotOnStop { o.snapshotOnStop = snapshotOnStop }
        if let append { o.append = append }
        if let initrd { o.initrd = initrd }
        if let hda { o.hda = hda }
        if hdaReadOnly { o.hdaReadOnly = true }
        if let loadAddr {
            guard let a = Sizes.parseAddress(loadAddr) else { throw LauncherError(.usage, "--load-addr: not an address: \(loadAddr.quotedForMessage)") }
            o.loadAddress = a
        }
        if let entry {
            guard let a = Sizes.parseAddress(entry) else { throw LauncherError(.usage, "--entry: not an address: \(entry.quotedForMessage)") }
            o.entry = a
        }
        if let mode {
            guard mode == "16" || mode == "64" else { throw LauncherError(.usage, "--mode must be 16 or 64, not \(FlagValues.shown(mode))") }
            o.mode = mode == "16" ? 16 : 64
        }
        if let logLevel {
            guard LaunchOptions.logLevels.contains(logLevel) else {
                throw LauncherError(.usage, "--log-level must be one of \(LaunchOptions.logLevels.joined(separator: ", "))")
            }
            o.logLevel = logLevel
        }
        if let handlerBudget {
            o.handlerBudget = try FlagValues.seconds(flag: "handler-budget", handlerBudget, max: LaunchOptions.maxBudget)
        }
        if noSeccomp { o.noSeccomp = true }
        if noHPET { o.noHPET = true }
        if pvpanic { o.pvpanic = true }
        if let uuid {
            guard let u = MachineUUID(uuid) else { throw LauncherError(.usage, "--uuid must be 8-4-4-4-12 hex digits, not \(uuid.quotedForMessage)") }
            o.uuid = u
        }
        for spec in fwCfg {
            do { o.fwCfg.append(try FwCfgFile.parse(spec)) } catch { throw LauncherError(.usage, "--fw-cfg \(spec.quotedForMessage): \(error.why)") }
        }
        if !fwCfg.isEmpty {
            do { try FwCfgFile.check(names: o.fwCfg.map(\.name), sizes: []) } catch { throw LauncherError(.usage, "--fw-cfg: \(error.why)") }
        }
        if let apiSock { o.apiSock = apiSock }
        // A flag given overrides the file's key: errors in it name the flag.
        let flagged: [(String, Bool)] = [("memory", memory != nil), ("vcpus", vcpus != nil), ("irqchip", irqchip != nil),
                                         ("maxSeconds", maxSeconds != nil), ("append", append != nil),
                                         ("loadAddr", loadAddr != nil), ("entry", entry != nil), ("mode", mode != nil),
                                         ("apiSock", apiSock != nil), ("initrd", initrd != nil)]
        for (key, given) in flagged where given {
            o.fromConfig.remove(key)
            o.fromFlags.insert(key)
        }
        guard o.image != nil else { throw LauncherError(.usage, "no image: give IMAGE or 'image' in --config") }
        // Read-only of no disk is a mistake to name, not to ignore.
        guard !o.hdaReadOnly || o.hda != nil else {
            throw LauncherError(hdaReadOnly ? .usage : .config, hdaReadOnly ? "--hda-readonly without --hda (a disk image)"
                : "\(o.configFile ?? "config"): 'hdaReadOnly' without 'hda' (a disk image)")
        }
        return o
    }
}
