import CVMMPlugin
import VMMPluginKit

// The two functions the C descriptor in ../Entry/entry.c points at (@c: exact C names).

@c func uart16550_plugin_init(
    _ host: UnsafePointer<vmm_host_t>?, _ config: UnsafePointer<CChar>?,
    _ error: UnsafeMutablePointer<UnsafePointer<CChar>?>?
) -> UnsafeMutableRawPointer? {
    PluginEntry.create(UARTPlugin.self, id: UARTPlugin.id, host: host, config: config, error: error)
}

@c func uart16550_plugin_destroy(_ instance: UnsafeMutableRawPointer?) {
    PluginEntry.destroy(instance)
}

@c func uart16550_plugin_get_extension(_ instance: UnsafeMutableRawPointer?, _ id: UnsafePointer<CChar>?) -> UnsafeRawPointer? {
    PluginEntry.pluginExtension(instance, id)
}
