import CVMMPlugin
import VMMPluginKit
import Glibc

/// The Swift twin of the C null plugin (Tests/PluginFixtures/null_plugin.c): on one port
/// an IN reads 0 and an OUT is counted. It measures what the SDK's path costs, with no
/// device work of its own (ScratchDevice, by contrast, takes a lock per access).
/// Like its twin, `mmio=ADDR` adds a 4 KiB MMIO page (loads read 0) and `hlt=1` HLT.
/// With `direct=1` its handlers are C-convention functions the host calls directly
/// (`PluginServices.registerFunction`): what a Swift plugin's hot handler can cost.
final class NullSwift: VMMPlugin {
    static let id = "org.vmmkit.bench.null-swift"
    fileprivate var writes = 0 // one vCPU in the benchmark

    init(host: PluginServices, config: PluginConfig) throws {
        try config.allowOnly(["port", "mmio", "hlt", "direct"], plugin: Self.id)
        let port = try config.port("port", default: 0x10, plugin: Self.id)
        if try config.integer("direct", default: 0, plugin: Self.id) != 0 {
            let user = Unmanaged.passUnretained(self).toOpaque()
            try host.registerFunction(VMM_EXIT_PIO, base: UInt64(port), length: 1, exclusive: true, name: "null",
                                      user: user, nullSwiftPIO)
            let mmio = try config.integer("mmio", default: 0, plugin: Self.id)
            if mmio != 0 {
                try host.registerFunction(VMM_EXIT_MMIO, base: mmio, length: 4096, exclusive: true, name: "null",
                                          user: user, nullSwiftMMIO)
            }
            if try config.integer("hlt", default: 0, plugin: Self.id) != 0 {
                try host.registerFunction(VMM_EXIT_HLT, base: 0, length: 0, name: "null", user: user, nullSwiftHLT)
            }
            return
        }
        try host.registerPIO(port: port, name: "null") { [self] io in
            if io.isWrite { self.writes &+= 1 } else { io.value = 0 }
            return .handled
        }
        let mmio = try config.integer("mmio", default: 0, plugin: Self.id)
        if mmio != 0 {
            try host.registerMMIO(address: mmio, length: 4096, name: "null") { [self] access in
                if access.isWrite { self.writes &+= 1 } else { access.data = 0 }
                return .handled
            }
        }
        if try config.integer("hlt", default: 0, plugin: Self.id) != 0 {
            try host.registerRaw(VMM_EXIT_HLT, base: 0, length: 0, name: "null") { [self] _ in
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

// The `direct=1` handlers: the C twin's, in Swift (the host keeps the instance alive).
@c(null_swift_pio) private func nullSwiftPIO(_ user: UnsafeMutableRawPointer?, _ record: UnsafeMutablePointer<vmm_exit_t>?) -> vmm_verdict_t {
    guard let user, let record else { return VMM_FAIL.rawValue }
    if record.pointee.pio.is_write != 0 {
        Unmanaged<NullSwift>.fromOpaque(user)._withUnsafeGuaranteedRef { $0.writes &+= 1 }
    } else {
        memset(record.pointee.pio.data, 0, Int(record.pointee.pio.size) &* Int(record.pointee.pio.count))
    }
    return VMM_HANDLED.rawValue
}

@c(null_swift_mmio) private func nullSwiftMMIO(_ user: UnsafeMutableRawPointer?, _ record: UnsafeMutablePointer<vmm_exit_t>?) -> vmm_verdict_t {
    guard let user, let record else { return VMM_FAIL.rawValue }
    if record.pointee.mmio.is_write != 0 {
        Unmanaged<NullSwift>.fromOpaque(user)._withUnsafeGuaranteedRef { $0.writes &+= 1 }
    } else {
        record.pointee.mmio.data = (0, 0, 0, 0, 0, 0, 0, 0)
    }
    return VMM_HANDLED.rawValue
}

@c(null_swift_hlt) private func nullSwiftHLT(_ user: UnsafeMutableRawPointer?, _ record: UnsafeMutablePointer<vmm_exit_t>?) -> vmm_verdict_t {
    guard let user else { return VMM_FAIL.rawValue }
    Unmanaged<NullSwift>.fromOpaque(user)._withUnsafeGuaranteedRef { $0.writes &+= 1 }
    return VMM_HANDLED.rawValue
}

