/// A 16550A UART, register-accurate as Linux's 8250 driver and polled guests use it.
///
/// The line is infinitely fast while the host takes the output: a byte written to THR
/// leaves at once (THRE and TEMT stay set), so the transmit FIFO is never observable.
/// While the host cannot take more (`ready` false: a console that fell behind), LSR
/// reads THRE and TEMT clear and the THRE interrupt waits until `transmitterRoom()`, so
/// a guest that waits for THRE loses nothing. Bytes from the host wait in a
/// host-side queue and enter the receive FIFO (16 bytes, or the 1-byte RBR with FIFOs
/// off) as room frees up, once the guest shows it is receiving (`State.receiving`):
/// host input never overruns, and input typed before the guest's driver set the port
/// up is not lost in its FIFO reset. Overrun does happen where the guest can cause it:
/// loopback mode. Reset values, the interrupt and MSR in loopback are QEMU's
/// (`serial_reset`, `serial_update_irq`, `serial_ioport_read`).
///
/// Bus-agnostic: `read(_:)`/`write(_:_:)` take a register index 0...7; the placement
/// (PIO port or MMIO with a register shift) lives in the code that routes exits here.
/// Thread-safe: vCPU threads, an input thread and the host may call it concurrently.
public final class UART16550: @unchecked Sendable {
    /// Register indexes (DLAB = 0 names first).
    public enum Register: Int, Sendable {
        case rbrTHR = 0, ier = 1, iirFCR = 2, lcr = 3, mcr = 4, lsr = 5, msr = 6, scr = 7
    }

    public static let fifoSize = 16

    // Bits, as named in Linux's serial_reg.h.
    static let ierRDI: UInt8 = 0x01, ierTHRI: UInt8 = 0x02, ierRLSI: UInt8 = 0x04, ierMSI: UInt8 = 0x08
    static let lsrDR: UInt8 = 0x01, lsrOE: UInt8 = 0x02, lsrTHRE: UInt8 = 0x20, lsrTEMT: UInt8 = 0x40
    static let lcrDLAB: UInt8 = 0x80
    static let mcrDTR: UInt8 = 0x01, mcrRTS: UInt8 = 0x02, mcrOUT1: UInt8 = 0x04, mcrOUT2: UInt8 = 0x08, mcrLOOP: UInt8 = 0x10
    static let iirNone: UInt8 = 0x01, iirTHRI: UInt8 = 0x02, iirRDI: UInt8 = 0x04, iirRLSI: UInt8 = 0x06
    static let iirTimeout: UInt8 = 0x0c, iirFIFOs: UInt8 = 0xc0

    struct State {
        var rx = ByteRing(capacity: 1) // FIFOs are off after reset: RBR only
        var hostQueue = ByteRing(capacity: 0)
        var ier: UInt8 = 0
        var lcr: UInt8 = 0
        /// OUT2, as QEMU's `serial_reset` leaves it (and PC firmware before it).
        var mcr: UInt8 = 0x08
        var scr: UInt8 = 0
        var dll: UInt8 = 0x0c // 9600 baud at 1.8432 MHz, as firmware leaves it
        var dlm: UInt8 = 0
        var fifoEnabled = false
        var rxTrigger = 1
        var overrun = false
        /// MSR bits 7:4 and the latched delta bits 3:0 outside loopback: a connected host
        /// (DCD, DSR, CTS) whose lines never change, so no delta is ever latched here.
        var msr: UInt8 = 0xb0
        /// Host bytes flow into the receive FIFO. QEMU feeds them whenever there is room
        /// (`serial_can_receive`), so bytes piped before the guest's init land in the FIFO
        /// its FCR write then clears; holding them back for ever (the old rule: only while
        /// MCR.RTS) left a guest that polls LSR.DR without touching MCR spinning. So input
        /// flows from the first sign the guest is receiving, and then regardless of RTS, as
        /// QEMU's: RTS set outside loopback, IER.RDI enabled, an RBR read, or LSR read twice
        /// with no THR write between (polling for data: a polled writer reads it once a byte).
        var receiving = false
        /// LSR was read and THR not written since (`receiving`).
        var lsrPolled = false
        /// The THRE interrupt is pending (set when THR empties, cleared by an IIR read
        /// that reports it or by a THR write).
        var thrPending = false
        var irqLevel = false
        /// THR emptied while the host had no room: the THRE interrupt is raised by
        /// `transmitterRoom()` instead.
        var awaitingRoom = false
        /// A reader of host input waits for `hostQueue` to drain (`inputRoom(orNotify:)`).
        var inputRoomWaiter: (@Sendable () -> Void)?
    }

    let state = UARTLock(State())
    /// Transmits a byte and says whether the host has room for another.
    private let send: @Sendable (UInt8) -> Bool
    private let flushOutput: @Sendable () -> Void
    private let ready: @Sendable () -> Bool
    private let irq: (@Sendable (Bool) -> Void)?
    /// A PC COM port's board gates INTR with MCR.OUT2 (loopback forcing the pin off).
    /// QEMU's 16550 raises its line whenever IIR has an interrupt, for PC ports too, and
    /// guests written for it (IER.THRI with MCR 0x03, or MCR never written) rely on it,
    /// so the default is no gate; an embedder modelling the board may ask for it.
    public let irqGatedByOUT2: Bool

    /// `transmit` gets every byte the guest sends (not loopback bytes); `flush` is called
    /// when the guest reads any register (it is polling, so buffered output should show);
    /// `irq` gets each change of the interrupt line; `ready` says whether the host can
    /// take another byte now (called under the UART's lock).
    public convenience init(irqGatedByOUT2: Bool = false, transmit: @escaping @Sendable (UInt8) -> Void,
                            flush: @escaping @Sendable () -> Void = {}, ready: @escaping @Sendable () -> Bool = { true },
                            irq: (@Sendable (Bool) -> Void)? = nil) {
        self.init(irqGatedByOUT2: irqGatedByOUT2, send: { transmit($0); return ready() }, flush: flush, ready: ready, irq: irq)
    }

    /// As above, with `send` transmitting a byte and answering `ready` in one call
    /// (`UARTOutputSink.send`: one hold of the sink's lock per THR write, not two).
    public init(irqGatedByOUT2: Bool = false, send: @escaping @Sendable (UInt8) -> Bool,
                flush: @escaping @Sendable () -> Void = {}, ready: @escaping @Sendable () -> Bool = { true },
                irq: (@Sendable (Bool) -> Void)? = nil) {
        self.irqGatedByOUT2 = irqGatedByOUT2
        self.send = send
        self.flushOutput = flush
        self.ready = ready
        self.irq = irq
    }

    /// A guest read of register `index` (0...7; higher bits are not decoded).
    public func read(_ index: Int) -> UInt8 {
        flushOutput()
        return update { s in readRegister(index, &s) }
    }

    /// `read`'s, under the lock.
    private func readRegister(_ index: Int, _ s: inout State) -> UInt8 {
        switch Register(rawValue: index & 7)! {
        case .rbrTHR:
            if s.lcr & Self.lcrDLAB != 0 { return s.dll }
            let byte = s.rx.pop() ?? 0
            s.receiving = true
            Self.refill(&s)
            return byte
        case .ier:
            return s.lcr & Self.lcrDLAB != 0 ? s.dlm : s.ier
        case .iirFCR:
            let iir = Self.iir(s)
            if iir & 0x0f == Self.iirTHRI { s.thrPending = false }
            return iir
        case .lcr: return s.lcr
        case .mcr: return s.mcr
        case .lsr:
            if s.lsrPolled, !s.receiving { s.receiving = true; Self.refill(&s) }
            s.lsrPolled = true
            var lsr = Self.lsr(s)
            if !ready() { lsr &= ~(Self.lsrTHRE | Self.lsrTEMT) }
            s.overrun = false // error bits clear on read
            return lsr
        case .msr:
            // In loopback the inputs are MCR's outputs, computed with no delta bits and
            // leaving the latched ones alone (QEMU's `serial_ioport_read`, case 6).
            if s.mcr & Self.mcrLOOP != 0 { return Self.loopbackMSR(s.mcr) }
            let msr = s.msr
            s.msr &= 0xf0 // delta bits clear on read
            return msr
        case .scr: return s.scr
        }
    }

    /// A guest write of `value` to register `index` (0...7).
    /// An MMIO access at byte `offset` into a window whose registers are `1 << shift`
    /// bytes apart: address bits below the stride are not decoded and the register sits
    /// in the low byte of whatever width the guest uses (reg-io-width). `write` is the
    /// value written, nil for a read; returns the value read (0 for writes).
    public func mmioAccess(offset: UInt64, shift: Int, write: UInt64?) -> UInt64 {
        // Any offset and shift decode to a register (only 3 bits matter): no trap on input.
        let index = Int(truncatingIfNeeded: (offset >> UInt64(min(max(shift, 0), 63))) & 7)
        if let write {
            self.write(index, UInt8(truncatingIfNeeded: write))
            return 0
        }
        return UInt64(read(index))
    }

    /// A port access of `size` bytes starting at register `first`: a wider access touches
    /// consecutive registers, one byte each, as an 8-bit device on a 16/32-bit bus does.
    /// `write` is the value written, nil for a read; returns the value read (0 for writes).
    /// The bytes are one access under one lock, as QEMU's big lock holds for a whole exit:
    /// another vCPU's access comes before or after them, never between (`outw` to the
    /// divisor latch, or a read of LSR and RBR together, cannot be torn).
    public func portAccess(first: Int, size: Int, write: UInt32?) -> UInt32 {
        guard (0..<8).contains(first) else { return 0 }
        if write == nil { flushOutput() }
        return update { s in
            var value: UInt32 = 0
            for byte in 0..<min(max(size, 0), 4) where first + byte < 8 {
                if let write {
                    writeRegister(first + byte, UInt8(truncatingIfNeeded: write >> (8 * byte)), &s)
                } else {
                    value |= UInt32(readRegister(first + byte, &s)) << (8 * byte)
                }
            }
            return value
        }
    }

    public func write(_ index: Int, _ value: UInt8) {
        update { s in writeRegister(index, value, &s) }
    }

    /// `write`'s, under the lock.
    private func writeRegister(_ index: Int, _ value: UInt8, _ s: inout State) {
        switch Register(rawValue: index & 7)! {
        case .rbrTHR:
            if s.lcr & Self.lcrDLAB != 0 { s.dll = value; return }
            s.lsrPolled = false
            // Sent at once: THR is empty again, and says so once the host has room.
            if s.mcr & Self.mcrLOOP != 0 {
                Self.receive(value, into: &s)
                Self.transmitterEmptied(&s, room: ready())
            } else {
                Self.transmitterEmptied(&s, room: send(value))
            }
        case .ier:
            if s.lcr & Self.lcrDLAB != 0 { s.dlm = value; return }
            let enabledTHRI = value & Self.ierTHRI != 0 && s.ier & Self.ierTHRI == 0
            s.ier = value & 0x0f
            if value & Self.ierRDI != 0, !s.receiving { s.receiving = true; Self.refill(&s) }
            if enabledTHRI { Self.transmitterEmptied(&s, room: ready()) } // THR is empty: the interrupt fires now
        case .iirFCR:
            let enable = value & 0x01 != 0
            if enable != s.fifoEnabled || value & 0x02 != 0 { s.rx.removeAll(); s.overrun = false }
            s.fifoEnabled = enable
            s.rx.capacity = enable ? Self.fifoSize : 1
            s.rxTrigger = [1, 4, 8, 14][Int(value >> 6)]
            Self.refill(&s)
        case .lcr:
            s.lcr = value
        case .mcr:
            s.mcr = value & 0x1f
            if s.mcr & (Self.mcrRTS | Self.mcrLOOP) == Self.mcrRTS { s.receiving = true }
            Self.refill(&s) // receiving now, or loopback left: the host may send again
        case .lsr, .msr:
            break // read-only; the 16550A ignores writes (LSR writes are a factory test)
        case .scr:
            s.scr = value
        }
    }

    /// The host has room for output again (after `ready` answered false): the THRE
    /// interrupt withheld meanwhile fires now. Any thread.
    public func transmitterRoom() {
        update { s in
            if s.awaitingRoom { s.awaitingRoom = false; s.thrPending = true }
        }
    }

    private static func transmitterEmptied(_ s: inout State, room: Bool) {
        s.thrPending = room
        s.awaitingRoom = !room
    }

    /// Bytes from the host side (typed, piped, or a test buffer). Any thread.
    public func receive(_ bytes: some Sequence<UInt8>) {
        update { s in
            for byte in bytes { s.hostQueue.pushGrowing(byte) }
            Self.refill(&s)
        }
    }

    /// Host bytes not yet in the receive FIFO.
    public var queuedInput: Int { state.withLock { $0.hostQueue.count } }

    /// Host bytes a reader of a file or terminal (`InputPump`) lets wait beyond the
    /// receive FIFO. It reads no more until the guest has taken half of them, as QEMU's
    /// character backends read only what the device can take: `vmm run < /dev/zero` once
    /// queued 12 MB a second for as long as it ran, and a snapshot could not save it.
    public static let inputQueueLimit = 4096

    /// Room in the host queue under `inputQueueLimit`. When there is none, `notify` is
    /// called once the guest's reads bring the queue down to half the limit (under the
    /// UART's lock, on the reading vCPU's thread: it must only signal), or dropped by
    /// `cancelInputRoomWait()`. Any thread.
    public func inputRoom(orNotify notify: @escaping @Sendable () -> Void) -> Int {
        state.withLock { s in
            let room = max(0, Self.inputQueueLimit - s.hostQueue.count)
            if room == 0 { s.inputRoomWaiter = notify }
            return room
        }
    }

    /// Drops a waiting `inputRoom(orNotify:)` notification: it is not called after this
    /// returns. Any thread.
    public func cancelInputRoomWait() { state.withLock { $0.inputRoomWaiter = nil } }

    /// The interrupt line as last driven.
    public var irqLevel: Bool { state.withLock { $0.irqLevel } }

    /// Runs `body` under the lock, then drives the IRQ line if its level changed.
    func update<T>(_ body: (inout State) -> T) -> T {
        state.withLock { s in
            let result = body(&s)
            if let waiter = s.inputRoomWaiter, s.hostQueue.count <= Self.inputQueueLimit / 2 {
                s.inputRoomWaiter = nil
                waiter()
            }
            let level = Self.iir(s) & Self.iirNone == 0 // QEMU's: any pending interrupt
                && (!irqGatedByOUT2 || (s.mcr & Self.mcrOUT2 != 0 && s.mcr & Self.mcrLOOP == 0))
            if level != s.irqLevel {
                s.irqLevel = level
                irq?(level)
            }
            return result
        }
    }

    /// Moves host bytes into the receive FIFO while it has room and the guest is receiving
    /// (not in loopback: the receiver then listens to the transmitter only).
    private static func refill(_ s: inout State) {
        guard s.mcr & mcrLOOP == 0, s.receiving else { return }
        while !s.rx.isFull, let byte = s.hostQueue.pop() { _ = s.rx.push(byte) }
    }

    /// A byte arriving at the receiver when there is no room latches overrun. With
    /// FIFOs it is lost (the FIFO keeps its bytes); without, it overwrites the unread
    /// RBR, as the datasheet describes.
    private static func receive(_ byte: UInt8, into s: inout State) {
        guard !s.rx.push(byte) else { return }
        s.overrun = true
        if !s.fifoEnabled { s.rx.removeAll(); _ = s.rx.push(byte) }
    }

    static func lsr(_ s: State) -> UInt8 {
        var lsr = lsrTHRE | lsrTEMT
        if !s.rx.isEmpty { lsr |= lsrDR }
        if s.overrun { lsr |= lsrOE }
        return lsr
    }

    /// The highest-priority pending interrupt, as IIR reports it.
    static func iir(_ s: State) -> UInt8 {
        let fifoBits = s.fifoEnabled ? iirFIFOs : 0
        if s.ier & ierRLSI != 0, s.overrun { return fifoBits | iirRLSI }
        if s.ier & ierRDI != 0, !s.rx.isEmpty {
            // Below the trigger level the 16550A reports a character timeout once the
            // line has been idle for four characters; this line is idle at once.
            return fifoBits | (s.fifoEnabled && s.rx.count < s.rxTrigger ? iirTimeout : iirRDI)
        }
        if s.ier & ierTHRI != 0, s.thrPending { return fifoBits | iirTHRI }
        if s.ier & ierMSI != 0, s.msr & 0x0f != 0 { return fifoBits }
        return fifoBits | iirNone
    }

    /// MSR in loopback: DCD = OUT2, RI = OUT1, DSR = DTR, CTS = RTS, no deltas.
    static func loopbackMSR(_ mcr: UInt8) -> UInt8 {
        (mcr & 0x0c) << 4 | (mcr & mcrRTS) << 3 | (mcr & mcrDTR) << 5
    }
}
