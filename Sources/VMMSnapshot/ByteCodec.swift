import Glibc

/// Little-endian records of the state files: appends on write, overflow-checked reads.
struct ByteWriter {
    private(set) var bytes: [UInt8] = []

    mutating func append<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func append(_ raw: UnsafeRawBufferPointer) { bytes.append(contentsOf: raw) }

    /// The bytes of a plain C struct (the kernel's own layout, checked in ckvm_snapshot.h).
    mutating func appendPOD<T>(_ value: T) {
        withUnsafeBytes(of: value) { bytes.append(contentsOf: $0) }
    }

    /// One record: tag, byte length, bytes.
    mutating func record(_ tag: StateTag, _ body: (inout ByteWriter) -> Void) {
        var inner = ByteWriter()
        body(&inner)
        append(tag.rawValue)
        append(UInt32(inner.bytes.count))
        bytes.append(contentsOf: inner.bytes)
    }
}

/// Reads what `ByteWriter` wrote. Every read checks the remaining length first, so a
/// truncated or corrupt file ends in `SnapshotError.invalid` naming the byte offset.
struct ByteReader {
    let bytes: [UInt8]
    let path: String
    private(set) var offset: Int
    let end: Int

    init(_ bytes: [UInt8], path: String) {
        self.bytes = bytes
        self.path = path
        self.offset = 0
        self.end = bytes.count
    }

    private init(_ bytes: [UInt8], path: String, offset: Int, end: Int) {
        self.bytes = bytes
        self.path = path
        self.offset = offset
        self.end = end
    }

    var isAtEnd: Bool { offset == end }
    var remaining: Int { end - offset }

    func fail(_ message: String) -> SnapshotError { .invalid(path: path, "\(message) at byte \(offset)") }

    mutating func read<T: FixedWidthInteger>(_: T.Type = T.self) throws(SnapshotError) -> T {
        let size = MemoryLayout<T>.size
        guard remaining >= size else { throw fail("truncated: \(size)-byte field needs \(size) bytes, \(remaining) left") }
        var value: T = 0
        withUnsafeMutableBytes(of: &value) { dst in
            bytes.withUnsafeBytes { src in dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[offset..<(offset + size)])) }
        }
        offset += size
        return T(littleEndian: value)
    }

    mutating func readBytes(_ count: Int) throws(SnapshotError) -> [UInt8] {
        guard count >= 0, remaining >= count else { throw fail("truncated: \(count) bytes needed, \(remaining) left") }
        defer { offset += count }
        return Array(bytes[offset..<(offset + count)])
    }

    /// A plain C struct stored with exactly its size.
    mutating func readPOD<T>(_: T.Type, zero: T) throws(SnapshotError) -> T {
        let size = MemoryLayout<T>.size
        guard remaining >= size else { throw fail("truncated: \(T.self) needs \(size) bytes, \(remaining) left") }
        var value = zero
        withUnsafeMutableBytes(of: &value) { dst in
            bytes.withUnsafeBytes { src in dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[offset..<(offset + size)])) }
        }
        offset += size
        return value
    }

    /// The next record: its tag and a reader limited to its body (length checked
    /// against what is left before anything is read from it).
    mutating func record() throws(SnapshotError) -> (tag: UInt32, body: ByteReader, at: Int) {
        let at = offset
        let tag: UInt32 = try read()
        let length: UInt32 = try read()
        guard Int(length) <= remaining else {
            throw .invalid(path: path, "record \(StateTag.name(tag)) at byte \(at) claims \(length) bytes but only \(remaining) follow (truncated?)")
        }
        let body = ByteReader(bytes, path: path, offset: offset, end: offset + Int(length))
        offset += Int(length)
        return (tag, body, at)
    }

    /// Ends a record: its body must have been read exactly.
    func expectEnd(_ tag: UInt32) throws(SnapshotError) {
        guard isAtEnd else { throw fail("record \(StateTag.name(tag)) has \(remaining) unexpected trailing bytes") }
    }
}

/// FNV-1a, 64 bit, over the state files (a few KiB each): a corruption check,
/// not a cryptographic hash (a snapshot is trusted as much as the directory it is in).
func fnv1a64(_ raw: UnsafeRawBufferPointer) -> UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    let prime: UInt64 = 0x0000_0100_0000_01b3
    for byte in raw {
        hash ^= UInt64(byte)
        hash = hash &* prime
    }
    return hash
}

/// `withUnsafeBytes` that keeps the typed error (the standard one rethrows `any Error`).
@discardableResult
func withBytes<R>(_ bytes: [UInt8], _ body: (UnsafeRawBufferPointer) throws(SnapshotError) -> R) throws(SnapshotError) -> R {
    try bytes.withUnsafeBytes { raw in Result { () throws(SnapshotError) in try body(raw) } }.get()
}

@discardableResult
func withMutableBytes<R>(_ bytes: inout [UInt8], _ body: (UnsafeMutableRawBufferPointer) throws(SnapshotError) -> R) throws(SnapshotError) -> R {
    try bytes.withUnsafeMutableBytes { raw in Result { () throws(SnapshotError) in try body(raw) } }.get()
}
