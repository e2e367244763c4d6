import VMMKit

/// Plugin state (ABI 1.2 "org.vmmkit.plugin.state/1") as snapshot device blobs: one
/// `device` line per loaded plugin, named `pluginN.ID` (N its place in load order).
extension PluginHost {
    /// Every loaded plugin's state, for `VMSnapshot.save(devices:)`. Refuses, naming
    /// the plugin, when one lacks the state extension or fails to save.
    public func saveStates() throws(PluginError) -> [DeviceState] {
        try saveStateBlobs().enumerated().map { (index, blob) throws(PluginError) in
            let name = Self.deviceName(index, blob.plugin)
            guard SnapshotManifest.isDeviceName(name) else {
                throw PluginError(plugin: blob.plugin, "its id cannot name a snapshot device (\(name): letters, digits, '.', '_', '-', at most 51 bytes)")
            }
            return DeviceState(name: name, version: blob.version, bytes: blob.bytes)
        }
    }

    /// Restores every loaded plugin from `devices` (other device blobs are ignored).
    /// Refuses, naming the plugin, a missing or version-mismatched blob.
    public func restoreStates(_ devices: [DeviceState]) throws(PluginError) {
        var blobs: [PluginStateBlob] = []
        for index in 0... {
            let prefix = "plugin\(index)."
            guard let d = devices.first(where: { $0.name.hasPrefix(prefix) }) else { break }
            blobs.append(PluginStateBlob(plugin: String(d.name.dropFirst(prefix.count)), version: d.version, bytes: d.bytes))
        }
        try restoreStateBlobs(blobs)
    }

    static func deviceName(_ index: Int, _ id: String) -> String { "plugin\(index).\(id)" }
}
