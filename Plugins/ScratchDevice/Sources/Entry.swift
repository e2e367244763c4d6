import CVMMPlugin
import VMMPluginKit

// The three functions the C descriptor in ../Entry/entry.c points at. @c (Swift 6.3)
// gives them these exact C names; on older compilers use @_cdecl("name") instead.

@c func scratch_device_init(
    _ host: UnsafePointer<vmm_host_t>?, _ config: UnsafePointer<CChar>?,
    _ error: UnsafeMutablePointer<UnsafePointer<CChar>?>?
) -> UnsafeMutableRawPointer? {
    PluginEntry.create(ScratchDevice.self, id: ScratchDevice.id, host: host, config: config, error: error)
}

@c func scratch_device_destroy(_ instance: UnsafeMutableRawPointer?) {
    PluginEntry.destroy(instance)
}

/// The plugin's own extensions: the ABI 1.2 state table (`PluginStateful`).
@c func scratch_device_get_extension(_ instance: UnsafeMutableRawPointer?, _ id: UnsafePointer<CChar>?) -> UnsafeRawPointer? {
    PluginEntry.pluginExtension(instance, id)
}
