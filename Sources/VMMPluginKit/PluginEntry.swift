import CVMMPlugin
import Glibc

/// The glue behind a Swift plugin's two exported C functions:
///
/// ```swift
/// @c func mydevice_init(_ host: UnsafePointer<vmm_host_t>?, _ config: UnsafePointer<CChar>?,
///                       _ error: UnsafeMutablePointer<UnsafePointer<CChar>?>?) -> UnsafeMutableRawPointer? {
///     PluginEntry.create(MyDevice.self, id: "org.example.mydevice", host: host, config: config, error: error)
/// }
/// @c func mydevice_destroy(_ instance: UnsafeMutableRawPointer?) { PluginEntry.destroy(instance) }
/// ```
/// plus the C line `VMM_SWIFT_PLUGIN_ENTRY(...)` naming them (vmm_plugin_swift.h).
public enum PluginEntry {
    /// What the host's instance pointer refers to: the plugin and its services.
    final class Instance {
        let plugin: any VMMPlugin
        let services: PluginServices
        /// ABI 1.2 state table, made on first request for a `PluginStateful` plugin.
        var state: PluginStateTable?
        init(plugin: any VMMPlugin, services: PluginServices) { (self.plugin, self.services) = (plugin, services) }
    }

    /// init()'s error message. [load-thread] calls are serialised process-wide by the
    /// host and it copies the message at once, so one slot is enough.
    nonisolated(unsafe) private static var lastError: UnsafeMutablePointer<CChar>?

    /// [load-thread] Creates `P`; a thrown error becomes init's error message.
    public static func create<P: VMMPlugin>(
        _ type: P.Type, id: String, host: UnsafePointer<vmm_host_t>?, config: UnsafePointer<CChar>?,
        error: UnsafeMutablePointer<UnsafePointer<CChar>?>?
    ) -> UnsafeMutableRawPointer? {
        func refuse(_ message: String) -> UnsafeMutableRawPointer? {
            free(lastError)
            lastError = strdup(message)
            error?.pointee = UnsafePointer(lastError)
            return nil
        }
        guard let host else { return refuse("\(id): no host table") }
        let minimum = MemoryLayout<vmm_host_t>.offset(of: \.get_extension)! + 8
        guard Int(host.pointee.struct_size) >= minimum else { return refuse("\(id): host table too small") }
        let services = PluginServices(host, pluginName: id)
        do {
            let settings = try PluginConfig(config.map { String(cString: $0) } ?? "")
            let plugin = try P(host: services, config: settings)
            return Unmanaged.passRetained(Instance(plugin: plugin, services: services)).toOpaque()
        } catch {
            return refuse("\(error)")
        }
    }

    /// [load-thread] The plugin's own extension table `id` (`VMMPlugin.pluginExtension`),
    /// for a third exported function the C entry names as get_extension.
    public static func pluginExtension(_ instance: UnsafeMutableRawPointer?, _ id: UnsafePointer<CChar>?) -> UnsafeRawPointer? {
        guard let instance, let id else { return nil }
        let box = Unmanaged<Instance>.fromOpaque(instance).takeUnretainedValue()
        let name = String(cString: id)
        if name == VMM_PLUGIN_EXT_STATE, let stateful = box.plugin as? any PluginStateful {
            if box.state == nil {
                let table = PluginStateTable(stateful, services: box.services)
                table.plugin = stateful
                box.state = table
            }
            return box.state.map { UnsafeRawPointer($0.table) }
        }
        return box.plugin.pluginExtension(name)
    }

    /// [load-thread] Shuts the plugin down and releases it and its handlers.
    public static func destroy(_ instance: UnsafeMutableRawPointer?) {
        guard let instance else { return }
        let box = Unmanaged<Instance>.fromOpaque(instance).takeRetainedValue()
        box.plugin.shutdown()
        // The host calls no handler after destroy: a handler that captured the plugin
        // strongly (the plugin holding its services) is released here, no cycle left.
        box.services.boxes.removeAll()
    }
}
