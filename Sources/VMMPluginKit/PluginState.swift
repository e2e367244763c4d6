import CVMMPlugin
import Glibc

/// A Swift plugin with state to snapshot (ABI 1.2 "org.vmmkit.plugin.state/1"). A
/// plugin conforming to it answers that extension through `PluginEntry.pluginExtension`
/// (its C entry must name a get_extension: `VMM_SWIFT_PLUGIN_ENTRY_EXT`).
///
/// Threads: both calls run on the host's control thread while every vCPU is paused or
/// not yet started; the plugin's own threads keep running, so guard what they share.
public protocol PluginStateful: VMMPlugin {
    /// The version of the blob `saveState` writes (the plugin's own numbering, >= 1).
    var stateVersion: UInt32 { get }
    /// The plugin's state as bytes.
    func saveState() throws -> [UInt8]
    /// Replaces the state with a blob `saveState` wrote (hostile bytes: check every
    /// size). Throw to refuse it: the host's message names the plugin and gives the
    /// error's description (logged at error level during the call, which hosts since
    /// ABI 1.2 take as the reason).
    func restoreState(_ bytes: [UInt8], version: UInt32) throws
}

/// The vmm_plugin_state_t table of one instance, valid while the instance lives.
final class PluginStateTable {
    let table: UnsafeMutablePointer<vmm_plugin_state_t>
    /// The blob of the last save that did not fit, for the host's retry: the next call
    /// only, and only when it brings the room. Any other call drops it and saves afresh
    /// (a host that gave up after the -ENOSPC, say for a state over its limit, got the
    /// state of that moment on its next snapshot, however much had changed since).
    var pending: [UInt8]?

    init(_ plugin: any PluginStateful, services: PluginServices) {
        self.services = services
        table = .allocate(capacity: 1)
        table.initialize(to: vmm_plugin_state_t())
        table.pointee.struct_size = UInt32(MemoryLayout<vmm_plugin_state_t>.size)
        table.pointee.version = plugin.stateVersion
        table.pointee.user = Unmanaged.passUnretained(self).toOpaque()
        table.pointee.save = { user, buffer, capacity, sizeOut in
            guard let user, let sizeOut else { return -EINVAL }
            let me = Unmanaged<PluginStateTable>.fromOpaque(user).takeUnretainedValue()
            guard let plugin = me.plugin else { return -ENODEV }
            let bytes: [UInt8]
            let retry = me.pending
            me.pending = nil
            if let retry, UInt64(retry.count) <= capacity { bytes = retry } else {
                do { bytes = try plugin.saveState() } catch { me.services.log(.error, "\(error)"); return -EIO }
            }
            sizeOut.pointee = UInt64(bytes.count)
            guard UInt64(bytes.count) <= capacity else { me.pending = bytes; return -ENOSPC }
            if let buffer, !bytes.isEmpty { bytes.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) } }
            return 0
        }
        table.pointee.restore = { user, bytes, length, version in
            guard let user else { return -EINVAL }
            let me = Unmanaged<PluginStateTable>.fromOpaque(user).takeUnretainedValue()
            guard let plugin = me.plugin else { return -ENODEV }
            guard version == plugin.stateVersion else { return -ENOTSUP }
            guard length <= 1 << 30, length == 0 || bytes != nil else { return -EINVAL }
            let blob = length == 0 ? [] : [UInt8](UnsafeRawBufferPointer(start: bytes, count: Int(length)))
            do { try plugin.restoreState(blob, version: version) } catch { me.services.log(.error, "\(error)"); return -EINVAL }
            return 0
        }
    }

    /// Set by the owning `PluginEntry.Instance`; cleared at destroy.
    weak var plugin: (any PluginStateful)?
    /// Where a refusal's reason is logged (the host takes it as its message).
    private let services: PluginServices

    deinit { table.deallocate() }
}

/// Little-endian reading and writing for state blobs, with every read bounds-checked.
public struct StateWriter {
    public private(set) var bytes: [UInt8] = []
    public init() {}
    public mutating func u8(_ v: UInt8) { bytes.append(v) }
    public mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    public mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    public mutating func bool(_ v: Bool) { u8(v ? 1 : 0) }
    /// A u32 count then the bytes.
    public mutating func blob(_ v: [UInt8]) { u32(UInt32(v.count)); bytes += v }
}

public struct StateReader {
    let bytes: [UInt8]
    var offset = 0
    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    public var atEnd: Bool { offset == bytes.count }
    mutating func take(_ n: Int) throws -> ArraySlice<UInt8> {
        guard n >= 0, n <= bytes.count - offset else { throw VMMPluginError("state blob cut short at byte \(offset) (needs \(n) more)") }
        defer { offset += n }
        return bytes[offset..<offset + n]
    }
    public mutating func u8() throws -> UInt8 { try take(1).first! }
    public mutating func u32() throws -> UInt32 { try take(4).reversed().reduce(0) { $0 << 8 | UInt32($1) } }
    public mutating func u64() throws -> UInt64 { try take(8).reversed().reduce(0) { $0 << 8 | UInt64($1) } }
    public mutating func bool() throws -> Bool {
        let v = try u8()
        guard v <= 1 else { throw VMMPluginError("state blob: byte \(offset - 1) is \(v), not a boolean") }
        return v == 1
    }
    /// At most `limit` bytes.
    public mutating func blob(limit: Int) throws -> [UInt8] {
        let n = try u32()
        guard n <= limit else { throw VMMPluginError("state blob: \(n) bytes where at most \(limit) fit") }
        return Array(try take(Int(n)))
    }
    public func finish() throws { guard atEnd else { throw VMMPluginError("state blob: \(bytes.count - offset) bytes left over") } }
}
