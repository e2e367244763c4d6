import Synchronization
import VMMKit

/// LPT1 as QEMU's `pc` has it (`-parallel`, whose default under `-nographic` is the null
/// backend): ports 0x378-0x37f, IRQ 7, in QEMU's software mode (hw/char/parallel.c's
/// `parallel_ioport_read_sw` and `_write_sw`): the data latch, the status register's
/// handshake and the control register. What the guest prints goes where `--parallel`
/// says (`connectPrinter`): nowhere by default, as into QEMU's null backend, or stdout or
/// a file, as QEMU's `-parallel stdio` or `file:`. Before, nothing answered there (every
/// read all-ones, a `--strict-io` guest stopped at its first probe).
///
/// The handshake: a rising strobe (control bit 0) with the printer selected and
/// initialised prints the data byte and makes the printer busy; status reads then
/// toggle ACK and busy as QEMU's do without waiting; the strobe's fall raises IRQ 7 when
/// control bit 4 enables it, and a status read lowers it. Registers byte-wide through
/// `BytePorts`, under the port's lock; in snapshots (`parallel`, written when not as
/// after a reset).
final class ParallelPort: BytePortDevice {
    static let base: UInt16 = 0x378
    static let ports: [UInt16] = (0..<8).map { base + $0 }
    static let irqLine: UInt32 = 7

    static let busy: UInt8 = 0x80, ack: UInt8 = 0x40, online: UInt8 = 0x10, error: UInt8 = 0x08, timeout: UInt8 = 0x01
    static let direction: UInt8 = 0x20, interrupts: UInt8 = 0x10, select: UInt8 = 0x08, initialise: UInt8 = 0x04, strobe: UInt8 = 0x01

    struct Registers: Equatable {
        /// The data latch as written (a read gives it back unless the direction is input,
        /// which reads all-ones: there is no printer to drive the lines).
        var data: UInt8 = 0xff
        /// Status: "not busy" (7), ACK (6), online (4), "no error" (3), EPP timeout (0).
        var status: UInt8 = busy | ack | online | error | timeout
        /// Control: bits 6 and 7 always set, direction, IRQ enable, select, initialise,
        /// auto linefeed, strobe.
        var control: UInt8 = 0xc0 | select | initialise
        /// IRQ 7's level: set by a strobe's fall with interrupts enabled, cleared by a status read.
        var pending = false
    }

    /// One access's view of the port (`BytePortDevice`): the registers, and the bytes its
    /// strobes printed (a string instruction or a dword write can print several), handed
    /// to the printer after the access, under the lock, so two vCPUs' bytes keep their order.
    struct Access {
        var r: Registers
        var printed: [UInt8] = []
    }

    private struct Locked {
        var r = Registers()
        var line = InterruptLine()
        var printer: (@Sendable ([UInt8]) -> Void)?
    }

    private let state = Mutex(Locked())

    /// Drives IRQ 7 through `setLine`; before any vCPU runs.
    func connectInterrupt(_ setLine: @escaping @Sendable (Bool) -> Void) { state.withLock { $0.line.connect(setLine) } }

    /// Hands the printed bytes to `print` (`--parallel`'s `OutputSink`); before any vCPU
    /// runs. Without it they are dropped.
    func connectPrinter(_ print: @escaping @Sendable ([UInt8]) -> Void) { state.withLock { $0.printer = print } }

    func register(on dispatcher: ExitDispatcher) throws(VMMError) {
        try BytePorts.register(Self.ports, on: dispatcher, owner: "parallel port LPT1 (built-in)", device: self)
    }

    /// For a snapshot (vCPUs paused).
    var registers: Registers { state.withLock { $0.r } }

    /// A restore's (checked by `decode`), before any vCPU runs; the line's level is the
    /// irqchip's, not driven again.
    func restore(_ r: Registers) { state.withLock { $0.r = r } }

    /// Runs `body` under the lock (`BytePortDevice`), then prints what it printed and moves
    /// IRQ 7 if the access moved it.
    func withRegisters(_ body: (inout Access) -> Void) {
        state.withLock { l in
            let was = l.r.pending
            var access = Access(r: l.r)
            body(&access)
            l.r = access.r
            if !access.printed.isEmpty { l.printer?(access.printed) }
            l.line.follow(from: was, to: l.r.pending)
        }
    }

    static func read(_ port: UInt16, _ a: inout Access) -> UInt8 { read(port, &a.r) }

    static func write(_ port: UInt16, _ value: UInt8, _ a: inout Access) {
        // QEMU writes the latch to its backend on the strobe's rise only.
        if port == base + 2, value & (initialise | select | strobe) == initialise | select | strobe, a.r.control & strobe == 0 {
            a.printed.append(a.r.data)
        }
        write(port, value, &a.r)
    }

    static func read(_ port: UInt16, _ r: inout Registers) -> UInt8 {
        switch port &- base {
        case 0: return r.control & direction != 0 ? 0xff : r.data
        case 1:
            let value = r.status
            r.pending = false
            // The printer takes the byte: ACK drops, then rises with "not busy" again.
            if r.status & busy == 0, r.control & strobe == 0 {
                r.status = r.status & ack != 0 ? r.status & ~ack : r.status | ack | busy
            }
            return value
        case 2: return r.control
        default: return 0xff
        }
    }

    static func write(_ port: UInt16, _ value: UInt8, _ r: inout Registers) {
        switch port &- base {
        case 0: r.data = value
        case 2:
            let v = value | 0xc0
            if v & initialise == 0 {
                r.status = busy | ack | online | error
            } else if v & select != 0 {
                if v & strobe != 0 {
                    r.status &= ~busy // printing (on the rise: `write(_:_:_: inout Access)`)
                } else if r.control & interrupts != 0 {
                    r.pending = true
                }
            }
            r.control = v
        default: break
        }
    }

    // MARK: Snapshot line: `parallel DATA STATUS CONTROL PENDING` (Docs/SnapshotFormat.md)

    static let blobWords = 5

    static func blobLine(_ r: Registers) -> String {
        "parallel \(hex(r.data)) \(hex(r.status)) \(hex(r.control)) \(r.pending ? 1 : 0)"
    }

    /// `words` (the line split at spaces, `parallel` first), every value checked.
    static func decode(_ words: [Substring], _ bad: (String) -> LauncherError) throws(LauncherError) -> Registers {
        var v: [UInt8] = []
        for (word, what) in zip(words[1...3], ["data", "status", "control"]) {
            guard let b = BuiltInDeviceState.hexValue(word, UInt8.self) else { throw bad("parallel \(what) \(String(word).quotedForMessage)") }
            v.append(b)
        }
        guard words[4] == "0" || words[4] == "1" else { throw bad("parallel pending \(String(words[4]).quotedForMessage) (0 or 1)") }
        let r = Registers(data: v[0], status: v[1], control: v[2], pending: words[4] == "1")
        guard r.status & ~(busy | ack | online | error | timeout) == 0 else {
            throw bad("parallel status \(hex(r.status)) (only busy, ACK, online, error and timeout, 0xd9)")
        }
        guard r.control & 0xc0 == 0xc0 else { throw bad("parallel control \(hex(r.control)) (bits 6 and 7 always set)") }
        return r
    }
}
