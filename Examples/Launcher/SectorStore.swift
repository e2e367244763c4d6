/// Where the ATA disk's sectors live (`ATADisk`): a raw image file (`DiskImage`), or
/// memory (`MemorySectors`, for tests and fuzzing). Called under the disk's lock, on a
/// vCPU thread.
protocol SectorStore: AnyObject {
    /// The disk's size in 512-byte sectors, at least 1, fixed for its life.
    var sectors: UInt64 { get }
    /// Copies sector `lba` into `buffer` (512 bytes); false past the end or on an I/O error.
    func read(_ lba: UInt64, into buffer: UnsafeMutableRawBufferPointer) -> Bool
    /// Writes `buffer` (512 bytes) to sector `lba`; false past the end, read-only, or on an I/O error.
    func write(_ lba: UInt64, from buffer: UnsafeRawBufferPointer) -> Bool
    /// Makes written sectors durable (FLUSH CACHE); false on an I/O error.
    func flush() -> Bool
}

/// Sectors in memory: a disk for tests and the fuzz target, optionally read-only.
final class MemorySectors: SectorStore {
    private(set) var bytes: [UInt8]
    let readOnly: Bool
    var sectors: UInt64 { UInt64(bytes.count / 512) }

    /// `bytes` cut to whole sectors.
    init(_ bytes: [UInt8], readOnly: Bool = false) {
        self.bytes = Array(bytes.prefix(bytes.count / 512 * 512))
        self.readOnly = readOnly
    }

    func read(_ lba: UInt64, into buffer: UnsafeMutableRawBufferPointer) -> Bool {
        guard lba < sectors, buffer.count == 512 else { return false }
        bytes.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[Int(lba) * 512..<Int(lba) * 512 + 512])) }
        return true
    }

    func write(_ lba: UInt64, from buffer: UnsafeRawBufferPointer) -> Bool {
        guard !readOnly, lba < sectors, buffer.count == 512 else { return false }
        bytes.replaceSubrange(Int(lba) * 512..<Int(lba) * 512 + 512, with: buffer)
        return true
    }

    func flush() -> Bool { true }
}

extension ATAGeometry {
    /// The geometry of `store`'s disk from its sector 0 (read once, before any vCPU runs).
    init(guessing store: SectorStore) {
        var mbr = [UInt8](repeating: 0, count: 512)
        let read = mbr.withUnsafeMutableBytes { store.read(0, into: $0) }
        self.init(mbr: read ? mbr : nil, sectors: store.sectors)
    }
}
