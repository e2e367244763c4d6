import CVMMPlugin
import VMMPluginKit

// The two functions the C descriptor in ../Entry/entry.c points at.

@c func async_pf_init(
    _ host: UnsafePointer<vmm_host_t>?, _ config: UnsafePointer<CChar>?,
    _ error: UnsafeMutablePointer<UnsafePointer<CChar>?>?
) -> UnsafeMutableRawPointer? {
    PluginEntry.create(AsyncPFPlugin.self, id: AsyncPFPlugin.id, host: host, config: config, error: error)
}

@c func async_pf_destroy(_ instance: UnsafeMutableRawPointer?) {
    PluginEntry.destroy(instance)
}

@c func async_pf_get_extension(_ instance: UnsafeMutableRawPointer?, _ id: UnsafePointer<CChar>?) -> UnsafeRawPointer? {
    PluginEntry.pluginExtension(instance, id)
}
