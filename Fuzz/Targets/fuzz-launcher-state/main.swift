import FuzzDriver
// The launcher state a snapshot carries (Examples/Launcher/LauncherMachine.swift, linked
// here as source), which `vmm restore DIR` reads from the snapshot directory: any bytes
// give a machine or one line of error, never a trap. A machine read is within the
// launcher's limits, rebuilds the options it came from, and is saved
// (`encodedForSaving`: the writer's own read-back check) as bytes that read back as it.
// The same bytes are also read as the built-in devices' blob (BuiltInDeviceState.swift):
// a state within its limits that reads back as itself, or one line; and as the
// snapshot's fw_cfg files (FwCfgFile.swift): files `--fw-cfg` could have given, which
// encode to bytes that read back as them, or one line.
runFuzzer { data, size in
    let bytes = Array(fuzzInput(data, size))
    do throws(LauncherError) {
        let d = try BuiltInDeviceState.decode(bytes, version: 1, where: "fuzz")
        precondition((d.fwCfg?.offset ?? 0) <= FwCfgFile.maxTotalSize && (d.i8042?.replies.count ?? 0) <= I8042.queueLimit)
        precondition((d.resetControl ?? 0) & ~0x02 == 0 && (d.i8042?.status ?? 0) & ~BuiltInDeviceState.i8042StatusBits == 0)
        precondition((d.pm1Control ?? 0) & (1 << 13) == 0 && (d.systemControlA ?? 0) & 0x01 == 0)
        precondition(d.rtc.map { $0.ram.count == 128 && $0.offset.magnitude <= UInt64(BuiltInDeviceState.rtcMaxOffset) } ?? true)
        let back = try BuiltInDeviceState.decode(d.encoded(), version: 1, where: "fuzz")
        precondition(back == d, "devices round trip")
    } catch {
        precondition(error.status == .snapshot && error.message.hasPrefix("fuzz: launcher devices: "), error.message)
        requireOneLine(error.message)
    }
    do throws(FwCfgFile.Refusal) {
        let files = try FwCfgFile.decode(bytes, version: 1)
        precondition(files.count <= FwCfgFile.maxSavedCount && files.reduce(0) { $0 + $1.bytes.count } <= FwCfgFile.maxTotalSize)
        for file in files { precondition((try? FwCfgFile.check(name: file.name)) != nil, "fw_cfg name \(file.name)") }
        let back = try FwCfgFile.decode(FwCfgFile.encode(files), version: 1)
        precondition(back == files, "fw_cfg files round trip")
    } catch {
        requireOneLine(error.why)
    }
    do throws(LauncherError) {
        let m = try LauncherMachine.decode(bytes, version: 1, where: "fuzz")
        precondition((1...LaunchOptions.maxVCPUs).contains(m.vcpus) && m.memory >= RAMLayout.minMemory && m.memory <= RAMLayout.maxMemory)
        precondition(SerialTarget(m.serial) != nil && !m.plugins.contains(""))
        precondition(LauncherMachine(m.options) == m, "options round trip")
        let saved: [UInt8]
        do throws(LauncherError) { saved = try m.encodedForSaving() } catch { preconditionFailure("a state read is refused at save: \(error.message)") }
        let back = try LauncherMachine.decode(saved, version: 1, where: "fuzz")
        precondition(back == m, "save round trip")
    } catch {
        precondition(error.status == .snapshot && error.message.hasPrefix("fuzz: launcher state: "), error.message)
        requireOneLine(error.message)
    }
    return 0
}
