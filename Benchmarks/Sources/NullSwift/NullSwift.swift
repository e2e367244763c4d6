import CVMMPlugin
import VMMPluginKit

/// The Swift twin of the C null plugin (Tests/PluginFixtures/null_plugin.c): on one port
/// an IN reads 0 and an OUT is counted. It measures what the SDK's path costs, with no
/// device work of its own (ScratchDevice, by contrast, takes a lock per access).
/// Like its twin, `mmio=ADDR` adds a 4 KiB MMIO page (loads read 0) and `hlt=1` HLT.
final class NullSwift: VMMPlugin {
    static let id = "org.vmmkit.bench.null-swift"
    private var writes = 0 // one vCPU in the benchmark

    init(host: PluginServices, config: PluginConfig) throws {
        try config.allowOnly(["port", "mmio", "hlt"], plugin: Self.id)
        let port = try config.port("port", default: 0x10, plugin: Self.id)
        try host.registerPIO(port: port, name: "null") { [unowned(unsafe) self] io in
            if io.isWrite { self.writes &+= 1 } else { io.value = 0 }
            return .handled
        }
        let mmio = try config.integer("mmio", default: 0, plugin: Self.id)
        if mmio != 0 {
            try host.registerMMIO(address: mmio, length: 4096, name: "null") { [unowned(unsafe) self] access in
                if access.isWrite { self.writes &+= 1 } else { access.data = 0 }
                return .handled
            }
        }
        if try config.integer("hlt", default: 0, plugin: Self.id) != 0 {
            try host.registerRaw(VMM_EXIT_HLT, base: 0, length: 0, name: "null") { [unowned(unsafe) self] _ in
                self.writes &+= 1
                return .handled
            }
        }
    }
}

@c func null_swift_init(
    _ host: UnsafePointer<vmm_host_t>?, _ config: UnsafePointer<CChar>?,
    _ error: UnsafeMutablePointer<UnsafePointer<CChar>?>?
) -> UnsafeMutableRawPointer? {
    PluginEntry.create(NullSwift.self, id: NullSwift.id, host: host, config: config, error: error)
}

@c func null_swift_destroy(_ instance: UnsafeMutableRawPointer?) {
    PluginEntry.destroy(instance)
}
