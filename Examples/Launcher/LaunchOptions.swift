import VMMKit

/// Everything `vmm run` needs, merged from `--config FILE` (JSON) and flags (which win).
///
/// Config schema (every key optional; unknown keys are refused). Integers are read
/// exactly from the number's text (any JSON number whose value is whole: 64, 6.4e1);
/// seconds are any JSON number from 0.000001 (1 µs) up:
///   image: string, memory: string ("64M"), vcpus: integer 1...255, irqchip: "kernel"|"none",
///   plugins: [string "PATH[,key=value...]"], noDefaultPlugins: bool,
///   serial: "stdio"|"none"|"file:PATH", debugcon: "stdio"|"none"|"file:PATH",
///   parallel: "stdio"|"none"|"file:PATH" (where LPT1's printed bytes go, `ParallelPort`),
///   vgaText: "stdio"|"none"|"file:PATH", trace: "exits", stats: bool, maxSeconds: seconds (at most 1e9),
///   append: string, initrd: string, loadAddr: string|integer, entry: string|integer,
///   mode: 16|64, logLevel: "trace"|"debug"|"info"|"notice"|"warning"|"error"|"critical",
///   strictIO: bool (unassigned I/O stops the VM instead of reading all-ones),
///   snapshotOnStop: string (a directory; see `--snapshot-on-stop`),
///   apiSock: string (the control API's Unix socket path),
///   handlerBudget: seconds a plugin handler call may run (at most 86400, default 10),
///   noSeccomp: bool (vCPU threads without the seccomp allow-list),
///   readAheadPages: integer 0...256 (demand paging: pages installed ahead of a sequential fault),
///   hda: string (a raw disk image, `ATADisk`), hdaReadOnly: bool,
///   vga: "text"|"std" (`BochsDisplay`), screendump: "stdio"|"none"|"file:PATH",
///   noHPET: bool (no HPET and no ACPI HPET table, QEMU's `-machine hpet=off`),
///   pvpanic: bool (QEMU's `-device pvpanic` on port 0x505, `PVPanic`),
///   uuid: string 8-4-4-4-12 hex digits (QEMU's `-uuid`, `MachineUUID`),
///   fwCfg: [string "[name=]NAME,file=PATH" or "[name=]NAME,string=TEXT"] (QEMU's `-fw_cfg`, `FwCfgFile`).
struct LaunchOptions: Equatable {
    var image: String?
    var memory: UInt64 = 128 << 20 // QEMU's default (`mc->default_ram_size`)
    var vcpus = 1
    var irqchip: Bool? // nil: kernel (every VM gets LAPIC, IOAPIC, PIC and PIT, as on QEMU's pc)
    var plugins: [String] = []
    var noDefaultPlugins = false
    var serial = SerialTarget.stdio
    /// Port 0xe9 (`DebugConsole`); none: no device.
    var debugcon = SerialTarget.none
    /// Where LPT1's printed bytes go (`ParallelPort`); none: nowhere, as QEMU's null
    /// backend. The port is there either way; part of the machine as its output.
    var parallel = SerialTarget.none
    /// Where the VGA text screen goes when the run ends (`VGATextScreen`); none: nowhere.
    /// An output choice, not part of the machine: a snapshot does not keep it.
    var vgaText = SerialTarget.none
    /// `--vga std`: the Bochs VBE display and its framebuffer (`BochsDisplay`); part of the machine.
    var vgaStd = false
    /// `--no-hpet`: the machine without its HPET (`HPET`) or the ACPI table naming it; part of the machine.
    var noHPET = false
    /// `--fw-cfg`: files in fw_cfg's directory (`FwCfgFile`), config's first; part of the
    /// machine (a snapshot keeps their bytes).
    var fwCfg: [FwCfgFile.Spec] = []
    /// `--pvpanic`: QEMU's pvpanic on port 0x505 (`PVPanic`); part of the machine.
    var pvpanic = false
    /// `--uuid`: the SMBIOS system UUID and fw_cfg's (`MachineUUID`); zeros when not given, as QEMU's.
    var uuid = MachineUUID.zero
    /// Where the graphics screen goes as a PPM when the run ends (`Screendump`); an output choice.
    var screendump = SerialTarget.none
    var trace = false
    var stats = false
    var maxSeconds: Double?
    /// `maxSeconds` as the user wrote it (the flag's text or the file's number): the line
    /// saying the run stopped names what was given (`maxSecondsGiven`).
    var maxSecondsText: String?
    var append: String?
    var initrd: String?
    /// `--hda`: a raw disk image as the IDE primary master (`ATADisk`); part of the machine.
    var hda: String?
    var hdaReadOnly = false
    var loadAddress: UInt64?
    var entry: UInt64?
    var mode = 64
    var logLevel = "warning"
    var strictIO = false
    var snapshotOnStop: String?
    var apiSock: String?
    var handlerBudget = LaunchOptions.defaultHandlerBudget
    var noSeccomp = false
    var readAheadPages = 0
    static let maxReadAheadPages = 256 // DemandPager.maxReadAheadPages
    /// QEMU `pc`'s limit: one xAPIC ID each, 0 to 254 (255 is the broadcast ID), which the
    /// MP table and the MADT name and INIT/SIPI reach.
    static let maxVCPUs = 255
    static let defaultHandlerBudget = 10.0
    /// The longest handler budget: a day.
    static let maxBudget = 86_400.0
    /// A budget in seconds: from 1 µs to a day (and so finite).
    static func validBudget(_ s: Double) -> Bool { s >= minSeconds && s <= maxBudget }

    static let keys: Set<String> = ["image", "memory", "vcpus", "irqchip", "plugins", "noDefaultPlugins", "serial", "debugcon", "parallel", "vgaText",
                                    "trace", "stats", "maxSeconds", "append", "initrd", "loadAddr", "entry", "mode", "logLevel", "strictIO",
                                    "snapshotOnStop", "apiSock", "handlerBudget", "noSeccomp", "readAheadPages", "hda", "hdaReadOnly",
                                    "vga", "screendump", "noHPET", "fwCfg", "pvpanic", "uuid"]
    static let logLevels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]

    /// The config file these options came from, and the keys it set that no flag
    /// overrode: a range error in one of them names the file's key (status 4), not a flag.
    var configFile: String?
    var fromConfig: Set<String> = []
    /// The config keys a flag gave instead (`--append` for `append`, ...).
    var fromFlags: Set<String> = []

    var useIRQChip: Bool { irqchip ?? true }

    /// The longest `--max-seconds` / `maxSeconds` (about 31 years): any finite deadline
    /// the watchdog can compute without overflow, and inf or NaN refused.
    static let maxSecondsLimit = 1e9
    /// The shortest time any seconds option takes: 1 µs. Less is no deadline a clock
    /// here keeps (`"maxSeconds": 5e-324` was taken, and the run stopped at once).
    static let minSeconds = 0.000001
    /// How messages write `minSeconds`.
    static let minSecondsText = "0.000001"

    static func validSeconds(_ s: Double) -> Bool { s >= minSeconds && s <= maxSecondsLimit }

    /// What set `maxSeconds`, as the user gave it, for the lines that say it ended the
    /// run: `--max-seconds 0.5`, or `'maxSeconds' 0.5 (vm.json)` when the file's key did.
    var maxSecondsGiven: String {
        let value = maxSecondsText ?? maxSeconds.map { "\($0)" } ?? "none"
        if let configFile, fromConfig.contains("maxSeconds") { return "'maxSeconds' \(value) (\(configFile))" }
        return "--max-seconds \(value)"
    }

    /// Parses a JSON config (the bytes of `path`, named in errors); every problem names
    /// the file and the key. Pure: no I/O, so a fuzz target links it (Fuzz/).
    static func parse(_ bytes: [UInt8], path: String) throws(LauncherError) -> LaunchOptions {
        func bad(_ why: String) -> LauncherError { LauncherError(.config, "\(path): \(why)") }
        let parsed: JSONValue
        do { parsed = try JSONValue.parse(bytes) } catch { throw bad("malformed JSON or not an object (\(error))") }
        guard case let .object(dict) = parsed else {
            throw bad("malformed JSON or not an object (the top level is not an object)")
        }
        for key in dict.keys.sorted() where !keys.contains(key) {
            throw bad("unknown key \(key.quotedForMessage) (known: \(keys.sorted().joined(separator: ", ")))")
        }
        func string(_ key: String) throws(LauncherError) -> String? {
            guard let v = dict[key] else { return nil }
            guard case let .string(s) = v else { throw bad("'\(key)' must be a string") }
            return s
        }
        func bool(_ key: String) throws(LauncherError) -> Bool? {
            guard let v = dict[key] else { return nil }
            guard case let .bool(b) = v else { throw bad("'\(key)' must be true or false") }
            return b
        }
        /// An integer key's exact value (`JSONNumber.wholeNumber`), nil unless in `range`.
        func whole(_ key: String, _ range: ClosedRange<UInt64>) -> UInt64? {
            guard case let .number(n) = dict[key], let v = n.wholeNumber, range.contains(v) else { return nil }
            return v
        }
        /// A key in seconds, nil unless `valid`; and the number as the file wrote it.
        func seconds(_ key: String, _ valid: (Double) -> Bool) -> (Double, String)? {
            guard case let .number(n) = dict[key], let s = n.double, valid(s) else { return nil }
            return (s, n.shown)
        }
        /// ", not N" for a key holding a number: the number as written.
        func not(_ key: String) -> String {
            guard case let .number(n) = dict[key] else { return "" }
            return ", not \(n.shown)"
        }
        func address(_ key: String) throws(LauncherError) -> UInt64? {
            guard let v = dict[key] else { return nil }
            if case let .string(s) = v, let a = Sizes.parseAddress(s) { return a }
            if case let .number(n) = v, let a = n.wholeNumber { return a }
            throw bad("'\(key)' must be an address: a string (\"0x100000\") or a whole number from 0 to 2^64 - 1")
        }
        var o = LaunchOptions()
        o.image = try string("image")
        if let m = try string("memory") {
            guard let size = Sizes.parseMemory(m) else { throw bad("'memory' is not a size: \(m.quotedForMessage) (e.g. \"64M\")") }
            o.memory = size
        }
        if dict["readAheadPages"] != nil {
            guard let n = whole("readAheadPages", 0...UInt64(maxReadAheadPages)) else {
                throw bad("'readAheadPages' must be an integer from 0 to \(maxReadAheadPages)")
            }
            o.readAheadPages = Int(n)
        }
        if dict["vcpus"] != nil {
            guard let n = whole("vcpus", 1...UInt64(maxVCPUs)) else {
                throw bad("'vcpus' must be an integer from 1 to \(maxVCPUs)")
            }
            o.vcpus = Int(n)
        }
        if let i = try string("irqchip") {
            guard i == "kernel" || i == "none" else { throw bad("'irqchip' must be \"kernel\" or \"none\", not \(i.quotedForMessage)") }
            o.irqchip = i == "kernel"
        }
        if let p = dict["plugins"] {
            guard case let .array(items) = p else { throw bad("'plugins' must be an array of strings \"PATH[,key=value...]\"") }
            o.plugins = try items.map { item throws(LauncherError) in
                guard case let .string(s) = item else { throw bad("'plugins' must be an array of strings \"PATH[,key=value...]\"") }
                return s
            }
        }
        o.noDefaultPlugins = try bool("noDefaultPlugins") ?? false
        if let s = try string("serial") {
            guard let target = SerialTarget(s) else { throw bad("'serial' must be \"stdio\", \"none\" or \"file:PATH\", not \(s.quotedForMessage)") }
            o.serial = target
        }
        if let s = try string("debugcon") {
            guard let target = SerialTarget(s) else { throw bad("'debugcon' must be \"stdio\", \"none\" or \"file:PATH\", not \(s.quotedForMessage)") }
            o.debugcon = target
        }
        if let s = try string("parallel") {
            guard let target = SerialTarget(s) else { throw bad("'parallel' must be \"stdio\", \"none\" or \"file:PATH\", not \(s.quotedForMessage)") }
            o.parallel = target
        }
        if let s = try string("vgaText") {
            guard let target = SerialTarget(s) else { throw bad("'vgaText' must be \"stdio\", \"none\" or \"file:PATH\", not \(s.quotedForMessage)") }
            o.vgaText = target
        }
        if let v = try string("vga") {
            guard v == "std" || v == "text" else { throw bad("'vga' must be \"std\" or \"text\", not \(v.quotedForMessage)") }
            o.vgaStd = v == "std"
        }
        if let s = try string("screendump") {
            guard let target = SerialTarget(s) else { throw bad("'screendump' must be \"stdio\", \"none\" or \"file:PATH\", not \(s.quotedForMessage)") }
            o.screendump = target
        }
        if let t = try string("trace") {
            guard t == "exits" else { throw bad("'trace' must be \"exits\", not \(t.quotedForMessage)") }
            o.trace = true
        }
        o.stats = try bool("stats") ?? false
        o.strictIO = try bool("strictIO") ?? false
        if dict["maxSeconds"] != nil {
            guard let (n, text) = seconds("maxSeconds", validSeconds) else {
                throw bad("'maxSeconds' must be a number of seconds from \(minSecondsText) to \(Int(maxSecondsLimit))\(not("maxSeconds"))")
            }
            o.maxSeconds = n
            o.maxSecondsText = text
        }
        o.snapshotOnStop = try string("snapshotOnStop")
        o.append = try string("append")
        o.initrd = try string("initrd")
        o.hda = try string("hda")
        o.hdaReadOnly = try bool("hdaReadOnly") ?? false
        o.loadAddress = try address("loadAddr")
        o.entry = try address("entry")
        if dict["mode"] != nil {
            guard let n = whole("mode", 16...64), n == 16 || n == 64 else { throw bad("'mode' must be 16 or 64") }
            o.mode = Int(n)
        }
        if let l = try string("logLevel") {
            guard logLevels.contains(l) else { throw bad("'logLevel' must be one of \(logLevels.joined(separator: ", "))") }
            o.logLevel = l
        }
        o.apiSock = try string("apiSock")
        o.configFile = path
        o.fromConfig = Set(dict.keys)
        if dict["handlerBudget"] != nil {
            guard let (n, _) = seconds("handlerBudget", validBudget) else {
                throw bad("'handlerBudget' must be a number of seconds from \(minSecondsText) to \(Int(maxBudget))\(not("handlerBudget"))")
            }
            o.handlerBudget = n
        }
        o.noSeccomp = try bool("noSeccomp") ?? false
        o.noHPET = try bool("noHPET") ?? false
        o.pvpanic = try bool("pvpanic") ?? false
        if let u = try string("uuid") {
            guard let uuid = MachineUUID(u) else { throw bad("'uuid' must be 8-4-4-4-12 hex digits, not \(u.quotedForMessage)") }
            o.uuid = uuid
        }
        if let f = dict["fwCfg"] {
            let shape = "'fwCfg' must be an array of strings \"[name=]NAME,file=PATH\" or \"[name=]NAME,string=TEXT\""
            guard case let .array(items) = f else { throw bad(shape) }
            for (index, item) in items.enumerated() {
                guard case let .string(text) = item else { throw bad(shape) }
                do { o.fwCfg.append(try FwCfgFile.parse(text)) } catch { throw bad("'fwCfg' item \(index): \(error.why)") }
            }
            do { try FwCfgFile.check(names: o.fwCfg.map(\.name), sizes: []) } catch { throw bad("'fwCfg': \(error.why)") }
        }
        return o
    }
}
