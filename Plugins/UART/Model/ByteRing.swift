/// A FIFO of bytes: bounded (the UART's receive FIFO, `capacity` > 0) or growing
/// (the host-side input queue, `pushGrowing`). Value type: it lives inside the
/// UART's locked state.
struct ByteRing {
    private var storage: [UInt8] = []
    private var head = 0
    /// Bytes `push` accepts before it reports the FIFO full.
    var capacity: Int
    /// Bytes moved by compaction so far (its cost: linear in the bytes popped, `InputPumpTests`).
    private(set) var compactedBytes = 0

    init(capacity: Int) { self.capacity = capacity }

    var count: Int { storage.count - head }
    var isEmpty: Bool { count == 0 }
    var isFull: Bool { count >= capacity }

    /// Appends unless full; false when the byte was refused.
    mutating func push(_ byte: UInt8) -> Bool {
        guard !isFull else { return false }
        storage.append(byte)
        return true
    }

    /// Appends regardless of `capacity`.
    mutating func pushGrowing(_ byte: UInt8) { storage.append(byte) }

    mutating func pop() -> UInt8? {
        guard head < storage.count else { return nil }
        let byte = storage[head]
        head += 1
        // Compact now and then so a long-lived queue does not grow without bound; only
        // once half is consumed, so each byte is moved O(1) times (compacting every 4096
        // pops moved a megabyte queue 256 times per megabyte: quadratic).
        if head == storage.count { storage.removeAll(keepingCapacity: true); head = 0 }
        else if head >= 4096, head >= storage.count - head {
            compactedBytes += storage.count - head
            storage.removeFirst(head)
            head = 0
        }
        return byte
    }

    mutating func removeAll() {
        storage.removeAll(keepingCapacity: true)
        head = 0
    }
}

extension ByteRing {
    /// The bytes in FIFO order (for snapshots).
    var contents: [UInt8] {
        var copy = self
        var out: [UInt8] = []
        while let b = copy.pop() { out.append(b) }
        return out
    }
}
