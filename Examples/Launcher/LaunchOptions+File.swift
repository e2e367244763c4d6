import VMMLoader

extension LaunchOptions {
    /// Reads a JSON config file (a regular file of at most 1 MiB: a FIFO or a device is
    /// refused, not waited on) and parses it.
    static func load(configFile path: String) throws(LauncherError) -> LaunchOptions {
        let bytes: [UInt8]
        do { bytes = try FileBytes.read(path, limit: 1 << 20) } catch {
            throw LauncherError(.config, "\(path): cannot read: \(error)")
        }
        return try parse(bytes, path: path)
    }

    /// A range error in `key` (config) / `--flag`: status 4 naming the file's key when
    /// the config file set it, status 2 naming the flag otherwise.
    func rangeError(key: String, flag: String, _ why: String) -> LauncherError {
        if let configFile, fromConfig.contains(key) {
            return LauncherError(.config, "\(configFile): '\(key)' \(why)")
        }
        return LauncherError(.usage, "--\(flag) \(why)")
    }
}
