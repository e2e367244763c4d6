// The code samples of the documentation, compiled (Examples/DocSamples/README.md).
import CVMMPlugin     // vmm_host_t, for the entry functions below
import VMMPluginKit

// doc-sample: Sources/VMMPluginKit/VMMPluginKit.docc/WritingASwiftPlugin.md #1
final class Counter: VMMPlugin {
    static let id = "com.example.counter"
    private var count: UInt32 = 0   // one vCPU in this example; guard it for more

    init(host: PluginServices, config: PluginConfig) throws {
        try config.allowOnly(["port"], plugin: Self.id)
        // port() refuses a value above 0xffff, naming the key (UInt16(value) would trap).
        let port = try config.port("port", default: 0x600, plugin: Self.id)
        try host.registerPIO(port: port, name: "counter") { [self] exit in
            if exit.isWrite { self.count += 1 } else { exit.value = self.count }
            return .handled
        }
    }
}
// doc-sample: end

// doc-sample: Sources/VMMPluginKit/VMMPluginKit.docc/WritingASwiftPlugin.md #2
@c func counter_init(_ host: UnsafePointer<vmm_host_t>?, _ config: UnsafePointer<CChar>?,
                     _ error: UnsafeMutablePointer<UnsafePointer<CChar>?>?) -> UnsafeMutableRawPointer? {
    PluginEntry.create(Counter.self, id: Counter.id, host: host, config: config, error: error)
}
@c func counter_destroy(_ instance: UnsafeMutableRawPointer?) { PluginEntry.destroy(instance) }
// doc-sample: end
