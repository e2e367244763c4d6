import VMMLoader

extension FwCfgFile {
    /// Reads the files `--fw-cfg` names (a `string=` is its bytes, without a NUL, as
    /// QEMU's); `what` names each in errors ("--fw-cfg opt/x"). A missing, unreadable or
    /// oversized file (or more than `maxTotalSize` bytes in all) is status 6, as a missing
    /// image or `--hda`. The names were checked when the specs were parsed. `machine`, the
    /// machine's own files (`PVPanic.fwCfgFile`), come after them and count in the total,
    /// so a snapshot's blob of all of them reads back.
    static func load(_ specs: [Spec], machine: [FwCfgFile] = [], what: (Spec) -> String) throws(LauncherError) -> [FwCfgFile] {
        var files: [FwCfgFile] = []
        var total = machine.reduce(0) { $0 + $1.bytes.count }
        for spec in specs {
            let bytes: [UInt8]
            switch spec.content {
            case let .string(text):
                bytes = Array(text.utf8)
            case let .file(path):
                do { bytes = try FileBytes.read(path, limit: UInt64(maxTotalSize - total)) } catch {
                    throw LauncherError(.image, "\(what(spec)): \(path.quotedForMessage): \(error)")
                }
            }
            total += bytes.count
            files.append(FwCfgFile(name: spec.name, bytes: bytes))
            guard total <= maxTotalSize else {
                throw LauncherError(.image, "\(what(spec)): the fw_cfg files come to more than \(maxTotalSize) bytes in all")
            }
        }
        return files + machine
    }
}
