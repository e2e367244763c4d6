import FuzzDriver
import CVMMPlugin
import Glibc
@testable import VMMKit

// Plugin entry and handler-descriptor validation. The input describes a
// vmm_plugin_entry_t (struct_size, ABI version, which of id/version/description/init/
// destroy are NULL, empty or fuzzer text), laid out in an allocation exactly
// struct_size bytes long (as a plugin built against another header would have it),
// then handler descriptors the plugin's init registers: each field from the input,
// each descriptor also in an allocation of its own struct_size. ASan catches a host
// that reads past what the plugin said it has.
typealias Input = FuzzReader

extension FuzzReader {
    /// NULL, "" or up to 15 input bytes as a C string (freed by the caller).
    func cString() -> UnsafeMutablePointer<CChar>? {
        let kind = u8()
        switch kind % 4 {
        case 0: return nil
        case 1: return strdup("")
        case 2: return strdup("org.fuzz.plugin")
        default:
            let n = Int(kind >> 4)
            let p = UnsafeMutablePointer<CChar>.allocate(capacity: n + 1)
            for k in 0..<n { p[k] = CChar(bitPattern: u8() | 1) } // no NUL inside
            p[n] = 0
            return p
        }
    }
}

nonisolated(unsafe) var current: Input?
nonisolated(unsafe) var strings: [UnsafeMutablePointer<CChar>] = []
func keep(_ p: UnsafeMutablePointer<CChar>?) -> UnsafeMutablePointer<CChar>? { if let p { strings.append(p) }; return p }

let handle: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutablePointer<vmm_exit_t>?) -> vmm_verdict_t = { _, _ in VMM_NOT_MINE.rawValue }
let pluginInit: @convention(c) (UnsafePointer<vmm_host_t>?, UnsafePointer<CChar>?, UnsafeMutablePointer<UnsafePointer<CChar>?>?) -> UnsafeMutableRawPointer? = { host, _, error in
    guard let host, let input = current else { return nil }
    let full = MemoryLayout<vmm_handler_desc_t>.size
    while !input.done {
        let claimed = Int(input.u8()) % (full + 16)
        var d = vmm_handler_desc_t()
        d.struct_size = UInt32(claimed)
        let cls = input.u8()
        d.exit_class = cls & 0x80 != 0 ? UInt32(cls) << 20 : UInt32(cls % 8)
        d.base = input.u64()
        d.length = input.u64()
        d.priority = Int32(bitPattern: input.u32())
        d.flags = input.u8() & 0x40 != 0 ? input.u32() : UInt32(VMM_HANDLER_EXCLUSIVE)
        d.handle = input.u8() & 1 == 0 ? handle : nil
        d.name = UnsafePointer(keep(input.cString()))
        // The plugin's descriptor is exactly `claimed` bytes (at least its first field).
        let size = max(claimed, 4)
        let raw = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 8)
        withUnsafeBytes(of: &d) { raw.copyMemory(from: $0.baseAddress!, byteCount: min(size, full)) }
        if size > full { (raw + full).initializeMemory(as: UInt8.self, repeating: 0, count: size - full) }
        _ = host.pointee.register_handler(host.pointee.host_data, raw.assumingMemoryBound(to: vmm_handler_desc_t.self), error)
        raw.deallocate()
    }
    return UnsafeMutableRawPointer(bitPattern: 0x1000)
}
let pluginDestroy: @convention(c) (UnsafeMutableRawPointer?) -> Void = { _ in }

runFuzzer { data, size in
    let input = Input(Array(fuzzInput(data, size)))
    defer { strings.forEach { free($0) }; strings.removeAll(); current = nil }
    let full = MemoryLayout<vmm_plugin_entry_t>.size
    let claimed = Int(input.u8()) % (full + 16)
    var e = vmm_plugin_entry_t()
    e.struct_size = UInt32(claimed)
    let version = input.u8()
    e.abi_major = UInt16(version & 3)
    e.abi_minor = UInt16(version >> 2)
    e.id = UnsafePointer(keep(input.cString()))
    e.version = UnsafePointer(keep(input.cString()))
    e.description = UnsafePointer(keep(input.cString()))
    let fns = input.u8()
    e.`init` = fns & 1 != 0 ? pluginInit : nil
    e.destroy = fns & 2 != 0 ? pluginDestroy : nil
    let allocated = max(claimed, 8)
    let raw = UnsafeMutableRawPointer.allocate(byteCount: allocated, alignment: 8)
    defer { raw.deallocate() }
    withUnsafeBytes(of: &e) { raw.copyMemory(from: $0.baseAddress!, byteCount: min(allocated, full)) }
    if allocated > full { (raw + full).initializeMemory(as: UInt8.self, repeating: 0, count: allocated - full) }
    guard let library = try? PluginLibrary.validate(raw.assumingMemoryBound(to: vmm_plugin_entry_t.self), path: "fuzz.so") else { return 0 }
    // Valid: init registers the input's descriptors against a RAM region, as in a VMM.
    let vm = VirtualMachine.detached()
    _ = try? vm.memory.addRegion(name: "ram", guestAddress: 0, size: 1 << 20)
    let host = PluginHost(vm: vm, dispatcher: ExitDispatcher())
    host.logHandler = { _, _, _ in }
    current = input
    let instance = PluginInstance(library: library, host: host)
    try? instance.initialize(config: "")
    return 0
}
