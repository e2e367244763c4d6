/// Snapshot and restore of the UART's registers and queued bytes (the blob behind the
/// plugin's ABI 1.2 state extension). Version 1, little-endian:
///   u8 ier lcr mcr scr dll dlm fifoEnabled rxTrigger overrun msr thrPending irqLevel,
///   u8 rxCapacity (1 or 16), u8 rxCount, rxCount bytes,
///   u32 hostQueueCount (at most `maxSavedInput`), that many bytes.
extension UART16550 {
    public static let stateVersion: UInt32 = 1
    public static let maxSavedInput = 1 << 20

    public struct StateError: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    /// The registers and queued input, consistent under the device lock.
    public func savedState() -> [UInt8] {
        state.withLock { s in
            var out: [UInt8] = [s.ier, s.lcr, s.mcr, s.scr, s.dll, s.dlm, s.fifoEnabled ? 1 : 0, UInt8(s.rxTrigger),
                                s.overrun ? 1 : 0, s.msr, s.thrPending || s.awaitingRoom ? 1 : 0, s.irqLevel ? 1 : 0]
            let rx = s.rx.contents
            out += [UInt8(s.rx.capacity), UInt8(rx.count)] + rx
            let queued = Array(s.hostQueue.contents.prefix(Self.maxSavedInput))
            withUnsafeBytes(of: UInt32(queued.count).littleEndian) { out += $0 }
            return out + queued
        }
    }

    /// Replaces the registers and queued input with a `savedState()` blob; every field is
    /// checked first, and nothing changes when one is bad. The IRQ line is driven if the
    /// restored registers call for another level than the saved one.
    public func restoreState(_ bytes: [UInt8]) throws(StateError) {
        func bad(_ what: String) -> StateError { StateError(description: "uart state: \(what)") }
        guard bytes.count >= 14 else { throw bad("\(bytes.count) bytes; at least 14 expected") }
        var s = State()
        for (i, b) in [6, 8, 10, 11].map({ bytes[$0] }).enumerated() where b > 1 {
            throw bad("flag \(i) is \(b), not 0 or 1")
        }
        (s.ier, s.lcr, s.mcr, s.scr, s.dll, s.dlm) = (bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5])
        s.fifoEnabled = bytes[6] == 1
        s.rxTrigger = Int(bytes[7])
        guard [1, 4, 8, 14].contains(s.rxTrigger) else { throw bad("receive trigger level \(s.rxTrigger)") }
        s.overrun = bytes[8] == 1
        s.msr = bytes[9]
        s.thrPending = bytes[10] == 1
        s.irqLevel = bytes[11] == 1
        // What no guest can set through the registers (writes keep IER 3:0 and MCR 4:0;
        // FCR sizes the receive buffer with the FIFO enable) is refused.
        guard s.ier & 0xf0 == 0 else { throw bad("IER 0x\(String(s.ier, radix: 16)) has bits 7:4 set, which no write sets") }
        guard s.mcr & 0xe0 == 0 else { throw bad("MCR 0x\(String(s.mcr, radix: 16)) has bits 7:5 set, which no write sets") }
        let capacity = Int(bytes[12]), rxCount = Int(bytes[13])
        guard capacity == (s.fifoEnabled ? Self.fifoSize : 1), rxCount <= capacity else {
            throw bad("receive FIFO of \(capacity) holding \(rxCount) with FIFOs \(s.fifoEnabled ? "on" : "off")")
        }
        var at = 14
        guard bytes.count - at >= rxCount + 4 else { throw bad("cut short in the receive FIFO") }
        s.rx = ByteRing(capacity: capacity)
        for b in bytes[at..<at + rxCount] { _ = s.rx.push(b) }
        at += rxCount
        let queued = bytes[at..<at + 4].reversed().reduce(0) { $0 << 8 | Int($1) }
        at += 4
        guard queued <= Self.maxSavedInput, bytes.count - at == queued else {
            throw bad("host queue of \(queued) bytes with \(bytes.count - at) left in the blob")
        }
        s.hostQueue = ByteRing(capacity: 0)
        for b in bytes[at...] { s.hostQueue.pushGrowing(b) }
        // Whether input flows is not in the blob (version 1 predates it): it is open where
        // the registers show the guest receiving, else it opens again at the guest's next
        // RBR read or LSR poll, as it first did.
        s.receiving = s.mcr & (Self.mcrRTS | Self.mcrLOOP) == Self.mcrRTS || s.ier & Self.ierRDI != 0 || !s.rx.isEmpty
        let restored = s
        update { s in
            let waiter = s.inputRoomWaiter // an input reader's wait outlives the registers
            s = restored
            s.inputRoomWaiter = waiter
        }
    }
}
