import VMMKit

/// What `vmm restore` needs to rebuild the machine a snapshot was taken of, saved as
/// the snapshot's `launcher` device blob (version 1; Docs/SnapshotFormat.md): text
/// lines `key value`, last line `end`. The memory layout, vCPU and irqchip state are
/// in the snapshot itself; this says how the launcher built around them (RAM split,
/// plugin list and configs, serial, debug console, LPT1's output, strict I/O, the disk image).
struct LauncherMachine: Equatable {
    static let blobName = "launcher"
    static let version: UInt32 = 1
    static let maxSize = 1 << 16

    var memory: UInt64
    var vcpus: Int
    var irqchip: Bool
    var noDefaultPlugins: Bool
    var strictIO: Bool
    var serial: String
    /// `--debugcon`'s target: "none" (no device, and no line in the blob) or as `serial`.
    var debugcon: String
    /// `--parallel`'s target: "none" (printed bytes dropped, no line in the blob) or as `serial`.
    var parallel: String
    /// `--plugin` specs (`PATH[,key=value...]`), in order.
    var plugins: [String]
    /// `--hda`'s image path (a line only when given) and whether it is read-only.
    var hda: String?
    var hdaReadOnly: Bool
    /// `--vga std` (a line only when given).
    var vgaStd: Bool
    /// `--no-hpet` (a line `hpet no` only when given: a blob without it has the HPET).
    var noHPET: Bool
    /// `--pvpanic` (a line `pvpanic yes` only when given).
    var pvpanic: Bool
    /// `--uuid` (a line `uuid TEXT` only when not zero): fw_cfg's item; SMBIOS's copy is guest memory.
    var uuid: MachineUUID

    init(_ o: LaunchOptions) {
        memory = o.memory
        vcpus = o.vcpus
        irqchip = o.useIRQChip
        noDefaultPlugins = o.noDefaultPlugins
        strictIO = o.strictIO
        serial = o.serial.text
        debugcon = o.debugcon.text
        parallel = o.parallel.text
        plugins = o.plugins
        hda = o.hda
        hdaReadOnly = o.hda != nil && o.hdaReadOnly
        vgaStd = o.vgaStd
        noHPET = o.noHPET
        pvpanic = o.pvpanic
        uuid = o.uuid
    }

    func encoded() -> [UInt8] {
        var lines = ["memory \(memory)", "vcpus \(vcpus)", "irqchip \(irqchip ? "kernel" : "none")",
                     "default-plugins \(noDefaultPlugins ? "no" : "yes")", "strict-io \(strictIO ? "yes" : "no")",
                     "serial \(serial)"]
        // Only a machine with the device says so: a blob without it reads as before.
        if debugcon != SerialTarget.none.text { lines.append("debugcon \(debugcon)") }
        if parallel != SerialTarget.none.text { lines.append("parallel \(parallel)") }
        if let hda { lines += ["hda \(hda)", "hda-readonly \(hdaReadOnly ? "yes" : "no")"] }
        if vgaStd { lines.append("vga std") }
        if noHPET { lines.append("hpet no") }
        if pvpanic { lines.append("pvpanic yes") }
        if uuid != .zero { lines.append("uuid \(uuid.text)") }
        lines += plugins.map { "plugin \($0)" }
        return TextBlob.encode(header: "vmm-launcher 1", lines)
    }

    /// Parses a blob; every line and value checked. `where` names the snapshot.
    static func decode(_ bytes: [UInt8], version: UInt32, where dir: String) throws(LauncherError) -> LauncherMachine {
        func bad(_ why: String) -> LauncherError { LauncherError(.snapshot, "\(dir): launcher state: \(why)") }
        let lines = try TextBlob.lines(bytes, header: "vmm-launcher 1", version: version, expected: Self.version,
                                       maxSize: maxSize, bad)
        var o = LaunchOptions()
        var seen = Set<String>()
        for line in lines {
            guard let space = line.firstIndex(of: " ") else { throw bad("line \(line.quotedForMessage) is not 'key value'") }
            let key = String(line[..<space]), value = String(line[line.index(after: space)...])
            guard key == "plugin" || seen.insert(key).inserted else { throw bad("\(key.quotedForMessage) given twice") }
            switch key {
            case "memory":
                guard let m = UInt64(plainDecimal: value), m >= RAMLayout.minMemory, m <= RAMLayout.maxMemory, m % 4096 == 0 else { throw bad("memory \(value.quotedForMessage)") }
                o.memory = m
            case "vcpus":
                guard let n = UInt8(plainDecimal: value), (1...LaunchOptions.maxVCPUs).contains(Int(n)) else { throw bad("vcpus \(value.quotedForMessage)") }
                o.vcpus = Int(n)
            case "irqchip":
                guard value == "kernel" || value == "none" else { throw bad("irqchip \(value.quotedForMessage)") }
                o.irqchip = value == "kernel"
            case "default-plugins":
                guard value == "yes" || value == "no" else { throw bad("default-plugins \(value.quotedForMessage)") }
                o.noDefaultPlugins = value == "no"
            case "strict-io":
                guard value == "yes" || value == "no" else { throw bad("strict-io \(value.quotedForMessage)") }
                o.strictIO = value == "yes"
            case "serial":
                guard let s = SerialTarget(value) else { throw bad("serial \(value.quotedForMessage)") }
                o.serial = s
            case "debugcon":
                guard let d = SerialTarget(value), d != .none else { throw bad("debugcon \(value.quotedForMessage)") }
                o.debugcon = d
            case "parallel":
                guard let t = SerialTarget(value), t != .none else { throw bad("parallel \(value.quotedForMessage)") }
                o.parallel = t
            case "hda":
                guard !value.isEmpty else { throw bad("an empty hda path") }
                o.hda = value
            case "hda-readonly":
                guard value == "yes" || value == "no" else { throw bad("hda-readonly \(value.quotedForMessage)") }
                o.hdaReadOnly = value == "yes"
            case "vga":
                guard value == "std" else { throw bad("vga \(value.quotedForMessage)") }
                o.vgaStd = true
            case "hpet":
                guard value == "no" else { throw bad("hpet \(value.quotedForMessage)") }
                o.noHPET = true
            case "pvpanic":
                guard value == "yes" else { throw bad("pvpanic \(value.quotedForMessage)") }
                o.pvpanic = true
            case "uuid":
                guard let u = MachineUUID(value), u != .zero else { throw bad("uuid \(value.quotedForMessage)") }
                o.uuid = u
            case "plugin":
                guard !value.isEmpty else { throw bad("an empty plugin spec") }
                o.plugins.append(value)
            default:
                throw bad("unknown key \(key.quotedForMessage)")
            }
        }
        for key in ["memory", "vcpus", "irqchip", "default-plugins", "strict-io", "serial"] where !seen.contains(key) {
            throw bad("no '\(key)' line")
        }
        guard (o.hda != nil) == seen.contains("hda-readonly") else { throw bad("'hda' and 'hda-readonly' go together") }
        return LauncherMachine(o)
    }

    /// The options `vmm restore` rebuilds the machine with.
    var options: LaunchOptions {
        var o = LaunchOptions()
        (o.memory, o.vcpus, o.irqchip, o.noDefaultPlugins, o.strictIO) = (memory, vcpus, irqchip, noDefaultPlugins, strictIO)
        o.serial = SerialTarget(serial) ?? .none
        o.debugcon = SerialTarget(debugcon) ?? .none
        o.parallel = SerialTarget(parallel) ?? .none
        o.plugins = plugins
        (o.hda, o.hdaReadOnly) = (hda, hdaReadOnly)
        o.vgaStd = vgaStd
        o.noHPET = noHPET
        o.pvpanic = pvpanic
        o.uuid = uuid
        return o
    }
}

extension LauncherMachine {
    /// The first thing this state names outside the VM, or nil: a `plugin` spec that
    /// names a library by path or carries a config (a config can name files: the UART's
    /// `output=file:`, MemoryFault's `snapshot=`), or a `file:` console that `--serial`
    /// (or a `file:` debug console that `--debugcon`, a `file:` printer output that
    /// `--parallel`, or a disk image that `--hda`) does not replace. `vmm restore` follows these only with `--trust-snapshot`: a
    /// snapshot is data, and one from elsewhere could name any library to load or file
    /// to write. Plugins named bare come from the user's own search path.
    func hostReference(serialReplaced: Bool, debugconReplaced: Bool = false, parallelReplaced: Bool = false,
                       hdaReplaced: Bool = false) -> String? {
        if !hdaReplaced, let hda { return "the disk image \(hda.quotedForMessage)" }
        if !serialReplaced, case .file? = SerialTarget(serial) { return "the console file \(serial.quotedForMessage)" }
        if !debugconReplaced, case .file? = SerialTarget(debugcon) { return "the debug console file \(debugcon.quotedForMessage)" }
        if !parallelReplaced, case .file? = SerialTarget(parallel) { return "the parallel port file \(parallel.quotedForMessage)" }
        for spec in plugins where spec.contains("/") || spec.contains(",") {
            return "the plugin \(spec.quotedForMessage)"
        }
        return nil
    }

    /// `encoded()`, refused with one line when it would not read back as this state, so a
    /// snapshot is never written with a launcher state its restore refuses: a newline in
    /// a `--plugin` spec or in the `--serial`, `--debugcon` or `--parallel` path, or more than `maxSize` bytes in all.
    func encodedForSaving() throws(LauncherError) -> [UInt8] {
        if let spec = plugins.first(where: { $0.contains("\n") }) {
            throw LauncherError(.snapshot, "cannot snapshot: the plugin spec \(spec.quotedForMessage) holds a newline, which the launcher state cannot keep")
        }
        if serial.contains("\n") {
            throw LauncherError(.snapshot, "cannot snapshot: the console path \(serial.quotedForMessage) holds a newline, which the launcher state cannot keep")
        }
        if let hda, hda.contains("\n") {
            throw LauncherError(.snapshot, "cannot snapshot: the disk image path \(hda.quotedForMessage) holds a newline, which the launcher state cannot keep")
        }
        if debugcon.contains("\n") {
            throw LauncherError(.snapshot, "cannot snapshot: the debug console path \(debugcon.quotedForMessage) holds a newline, which the launcher state cannot keep")
        }
        if parallel.contains("\n") {
            throw LauncherError(.snapshot, "cannot snapshot: the parallel port path \(parallel.quotedForMessage) holds a newline, which the launcher state cannot keep")
        }
        let bytes = encoded()
        let back: LauncherMachine
        do { back = try Self.decode(bytes, version: Self.version, where: "cannot snapshot") } catch { throw LauncherError(.snapshot, error.message) }
        guard back == self else { throw LauncherError(.snapshot, "cannot snapshot: the launcher state would not read back as it was saved") }
        return bytes
    }
}
