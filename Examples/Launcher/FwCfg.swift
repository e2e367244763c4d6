import Glibc
import VMMKit

/// QEMU's fw_cfg legacy I/O interface: a 16-bit selector written to port 0x510, then
/// the item's bytes read one at a time from port 0x511. Enough items for guests that
/// ask QEMU for the CPU count and RAM size to work unchanged.
final class FwCfg: @unchecked Sendable {
    static let selectorPort: UInt16 = 0x510
    static let dataPort: UInt16 = 0x511
    enum Key: UInt16 { case signature = 0x00, id = 0x01, ramSize = 0x03, cpuCount = 0x05, maxCPUs = 0x0f, fileDirectory = 0x19 }

    /// Seven items, searched in order. Not a `[UInt16: [UInt8]]`: a first dictionary of
    /// those types makes the runtime scan every loaded image's conformance records at
    /// start-up (~0.26 million instructions, callgrind).
    private var items: [(selector: UInt16, bytes: [UInt8])] = []
    // Guarded by lock: the selected item (nil: none, or one fw_cfg does not have), its
    // bytes and the next one to read (at most their count: reads past the end are zeros).
    private var selector: UInt16?
    private var current: [UInt8] = []
    private var offset = 0
    private var lock = pthread_mutex_t()

    /// `ramSize` is all RAM (QEMU's FW_CFG_RAM_SIZE); `lowRAM` of it lies below the MMIO
    /// hole and the rest from 4 GiB up, as the "etc/e820" file says.
    init(cpus: Int, ramSize: UInt64, lowRAM: UInt64? = nil) {
        pthread_mutex_init(&lock, nil)
        add(Key.signature.rawValue, Array("QEMU".utf8))
        add(Key.id.rawValue, le(UInt32(1))) // traditional interface only, no DMA
        add(Key.ramSize.rawValue, le(ramSize))
        add(Key.cpuCount.rawValue, le(UInt16(cpus)))
        add(Key.maxCPUs.rawValue, le(UInt16(cpus)))
        // One file, "etc/e820" (selector 0x20): the RAM ranges, 20-byte packed entries
        // (address, length, type 1 = RAM), little-endian; the directory is big-endian.
        let low = lowRAM ?? ramSize
        var e820 = le(UInt64(0)) + le(low) + le(UInt32(1))
        if ramSize > low { e820 += le(UInt64(1) << 32) + le(ramSize - low) + le(UInt32(1)) }
        add(0x20, e820)
        let name = Array("etc/e820".utf8) + [UInt8](repeating: 0, count: 56 - 8)
        add(Key.fileDirectory.rawValue, be(UInt32(1)) + be(UInt32(e820.count)) + be(UInt16(0x20)) + [0, 0] + name)
    }

    private func add(_ selector: UInt16, _ bytes: [UInt8]) { items.append((selector, bytes)) }

    func register(on dispatcher: ExitDispatcher) throws(VMMError) {
        try dispatcher.registerPIO(port: Self.selectorPort, count: 2, owner: "fw_cfg") { [self] io, _ in
            pthread_mutex_lock(&lock)
            defer { pthread_mutex_unlock(&lock) }
            if io.port == Self.selectorPort {
                if io.isWrite {
                    select(UInt16(truncatingIfNeeded: io.value))
                } else {
                    io.value = 0
                }
            } else if !io.isWrite {
                // Each data read returns the next bytes; past the end, zeros.
                for i in 0..<(io.size * io.count) {
                    if offset < current.count {
                        io.data[i] = current[offset]
                        offset += 1
                    } else {
                        io.data[i] = 0
                    }
                }
            }
            return .handled
        }
    }

    /// Under lock.
    private func select(_ key: UInt16) {
        let item = items.first { $0.selector == key }
        selector = item?.selector
        current = item?.bytes ?? []
        offset = 0
    }

    /// For a snapshot (vCPUs paused).
    var state: BuiltInDeviceState.FwCfgRegisters {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        return .init(selector: selector, offset: offset)
    }

    /// Puts back a snapshot's selection; refused when the item is not this fw_cfg's or
    /// the offset lies past its end.
    func restore(_ s: BuiltInDeviceState.FwCfgRegisters) throws(LauncherError) {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        select(s.selector ?? 0xffff)
        guard s.selector == selector, s.offset <= current.count else {
            let item = s.selector.map { hex($0) } ?? "none"
            throw LauncherError(.snapshot, "fw_cfg item \(item) at offset \(s.offset): not an item of this machine's fw_cfg, or past its \(current.count) bytes")
        }
        offset = s.offset
    }

    private func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
    private func be<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.bigEndian) { Array($0) } }
}
