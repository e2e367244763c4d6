import CVMMPlugin
import Glibc

/// One plugin instance's saved state (ABI 1.2 extension "org.vmmkit.plugin.state/1"):
/// the plugin's id, its blob version and bytes, in load order.
public struct PluginStateBlob: Sendable, Equatable {
    public var plugin: String
    public var version: UInt32
    public var bytes: [UInt8]
    public init(plugin: String, version: UInt32, bytes: [UInt8]) {
        self.plugin = plugin
        self.version = version
        self.bytes = bytes
    }
}

extension PluginHost {
    /// The largest blob a plugin may save.
    public static let maxStateSize: UInt64 = 16 << 20

    /// Asks every loaded plugin, in load order, for its state. Call on the control
    /// thread with every vCPU paused. Refuses, naming the plugin, when one does not
    /// offer the state extension or its save fails: device state is never dropped.
    public func saveStateBlobs() throws(PluginError) -> [PluginStateBlob] {
        var blobs: [PluginStateBlob] = []
        for instance in instances {
            let id = instance.library.id
            let table = try stateTable(instance)
            var size: UInt64 = 0
            var (rc, why) = stateCall(instance, .stateSave) { table.save(table.user, nil, 0, &size) }
            var bytes: [UInt8] = []
            if rc == -ENOSPC {
                guard size <= Self.maxStateSize else {
                    throw PluginError(plugin: id, "its state needs \(size) bytes; at most \(Self.maxStateSize) are accepted")
                }
                bytes = [UInt8](repeating: 0, count: Int(size))
                let capacity = size
                (rc, why) = stateCall(instance, .stateSave) {
                    bytes.withUnsafeMutableBytes { table.save(table.user, $0.baseAddress, capacity, &size) }
                }
                guard rc != -ENOSPC else { throw PluginError(plugin: id, "save asked for \(capacity) bytes, then for \(size)") }
                guard size <= capacity else { throw PluginError(plugin: id, "save reported \(size) bytes written into \(capacity)") }
                bytes.removeSubrange(Int(size)...)
            } else if rc == 0, size != 0 {
                throw PluginError(plugin: id, "save reported \(size) bytes written into 0")
            }
            guard rc == 0 else { throw PluginError(plugin: id, "cannot save its state: \(why ?? PluginText.status(rc))") }
            blobs.append(PluginStateBlob(plugin: id, version: table.version, bytes: bytes))
        }
        return blobs
    }

    /// Gives each loaded plugin, in load order, the blob saved from the plugin at the same
    /// place. Call after loading the same plugins with the same configs, before any vCPU
    /// runs. Refuses, naming the plugin, a missing blob, one of another plugin or version,
    /// a blob for a plugin that is not loaded, and a plugin's refusal.
    public func restoreStateBlobs(_ blobs: [PluginStateBlob]) throws(PluginError) {
        for (index, instance) in instances.enumerated() {
            let id = instance.library.id
            guard index < blobs.count else { throw PluginError(plugin: id, "the snapshot has no state for it (plugin \(index + 1) of \(instances.count))") }
            let blob = blobs[index]
            guard blob.plugin == id else {
                throw PluginError(plugin: id, "the snapshot's plugin \(index + 1) is \(blob.plugin), not this one")
            }
            let table = try stateTable(instance)
            guard blob.version == table.version else {
                throw PluginError(plugin: id, "the snapshot holds state version \(blob.version); this plugin reads version \(table.version)")
            }
            let (rc, why) = stateCall(instance, .stateRestore) {
                blob.bytes.withUnsafeBytes { table.restore(table.user, $0.baseAddress, UInt64($0.count), blob.version) }
            }
            guard rc == 0 else { throw PluginError(plugin: id, "refused its saved state: \(why ?? PluginText.status(rc))") }
        }
        if blobs.count > instances.count {
            throw PluginError(plugin: blobs[instances.count].plugin, "the snapshot holds its state but it is not loaded")
        }
    }

    /// One call into the state extension, watched like init, with the last line the
    /// plugin logged at error level meanwhile: the reason for a refusal (the ABI's save
    /// and restore return only an errno). A line logged by a call that succeeds is
    /// logged as usual.
    private func stateCall(_ instance: PluginInstance, _ kind: PluginLifecycleCall, _ body: () -> Int32) -> (Int32, String?) {
        let state = PluginThreadState.current
        state.stateRefusal = nil
        state.capturesStateRefusal = true
        let rc = state.lifecycleCall(instance.lifecycleTag, kind, body)
        state.capturesStateRefusal = false
        let why = state.stateRefusal
        state.stateRefusal = nil
        if rc == 0 || rc == -ENOSPC, let why { instance.log(.error, instance.library.id, why) }
        return (rc, why)
    }

    private struct StateTable {
        var version: UInt32
        var user: UnsafeMutableRawPointer?
        var save: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?, UInt64, UnsafeMutablePointer<UInt64>?) -> Int32
        var restore: @convention(c) (UnsafeMutableRawPointer?, UnsafeRawPointer?, UInt64, UInt32) -> Int32
    }

    private func stateTable(_ instance: PluginInstance) throws(PluginError) -> StateTable {
        let id = instance.library.id
        let raw = VMM_PLUGIN_EXT_STATE.withCString { instance.pluginExtension($0) }
        guard let raw else {
            throw PluginError(plugin: id, "does not offer \(VMM_PLUGIN_EXT_STATE) (ABI 1.2), so its device state cannot be saved or restored")
        }
        guard PluginPointer.isAligned(raw, as: vmm_plugin_state_t.self) else {
            throw PluginError(plugin: id, "its \(VMM_PLUGIN_EXT_STATE) table at \(hex(UInt64(UInt(bitPattern: raw)))) is not aligned "
                + "as a vmm_plugin_state_t must be (a multiple of \(MemoryLayout<vmm_plugin_state_t>.alignment))")
        }
        let t = raw.assumingMemoryBound(to: vmm_plugin_state_t.self)
        let sizeNeeded = MemoryLayout<vmm_plugin_state_t>.size
        guard Int(t.pointee.struct_size) >= sizeNeeded, let save = t.pointee.save, let restore = t.pointee.restore else {
            throw PluginError(plugin: id, "its \(VMM_PLUGIN_EXT_STATE) table is incomplete (struct_size \(t.pointee.struct_size), save and restore required)")
        }
        return StateTable(version: t.pointee.version, user: t.pointee.user, save: save, restore: restore)
    }
}
