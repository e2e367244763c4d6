// The code samples of the documentation, compiled (Examples/DocSamples/README.md).
import CVMMPlugin
import VMMPluginKit

// doc-sample: Plugins/README.md #6
final class MyDevice: VMMPlugin {
    init(host: PluginServices, config: PluginConfig) throws {
        try config.allowOnly(["port"], plugin: "org.example.mydevice")
        // port() refuses a value above 0xffff, naming the key (UInt16(value) would trap).
        let port = try config.port("port", default: 0x70, plugin: "org.example.mydevice")
        try host.registerPIO(port: port, name: "answer") { io in
            if !io.isWrite { io.value = 42 }
            return .handled
        }
    }
}

// The two C functions the entry below points at. @c gives them these exact names.
@c func mydevice_init(_ host: UnsafePointer<vmm_host_t>?, _ config: UnsafePointer<CChar>?,
                      _ error: UnsafeMutablePointer<UnsafePointer<CChar>?>?) -> UnsafeMutableRawPointer? {
    PluginEntry.create(MyDevice.self, id: "org.example.mydevice", host: host, config: config, error: error)
}

@c func mydevice_destroy(_ instance: UnsafeMutableRawPointer?) { PluginEntry.destroy(instance) }
// doc-sample: end
