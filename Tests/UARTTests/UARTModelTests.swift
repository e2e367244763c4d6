import Synchronization
import Testing
@testable import UART16550

/// The 16550A register model on its own: what a guest driver observes register by register.
@Suite("16550A register model")
struct UARTModelTests {
    final class Wires: @unchecked Sendable {
        let sent = Mutex<[UInt8]>([])
        let irqs = Mutex<[Bool]>([])
        var all: [UInt8] { sent.withLock { $0 } }
        var edges: [Bool] { irqs.withLock { $0 } }
    }

    func make(gated: Bool = false) -> (UART16550, Wires) {
        let w = Wires()
        let uart = UART16550(irqGatedByOUT2: gated, transmit: { b in w.sent.withLock { $0.append(b) } },
                             irq: { l in w.irqs.withLock { $0.append(l) } })
        return (uart, w)
    }

    @Test("reset values as QEMU's serial_reset: IER 0, IIR 0x01, LCR 0, MCR 0x08 (OUT2), LSR 0x60, MSR 0xb0, SCR 0")
    func resetValues() {
        let (u, _) = make()
        #expect((1...7).map { u.read($0) } == [0x00, 0x01, 0x00, 0x08, 0x60, 0xb0, 0x00])
    }

    @Test("THR sends the byte; LSR keeps THRE and TEMT; RBR reads 0 when empty")
    func transmit() {
        let (u, w) = make()
        for b in "hi".utf8 { u.write(0, b) }
        #expect(w.all == Array("hi".utf8))
        #expect(u.read(5) == 0x60)
        #expect(u.read(0) == 0)
    }

    @Test("scratch register holds any value; LSR and MSR ignore writes")
    func scratchAndReadOnly() {
        let (u, _) = make()
        u.write(7, 0xa5); #expect(u.read(7) == 0xa5)
        u.write(7, 0x5a); #expect(u.read(7) == 0x5a)
        u.write(5, 0xff); #expect(u.read(5) == 0x60)
        u.write(6, 0x00); #expect(u.read(6) == 0xb0)
    }

    @Test("DLAB switches offsets 0/1 to DLL/DLM without touching THR, RBR or IER")
    func divisorLatch() {
        let (u, w) = make()
        u.write(1, 0x05)
        u.write(3, 0x83)
        u.write(0, 0x0c); u.write(1, 0x34)
        #expect(u.read(0) == 0x0c)
        #expect(u.read(1) == 0x34)
        #expect(w.all.isEmpty)
        u.write(3, 0x03)
        #expect(u.read(1) == 0x05)
        #expect(u.read(3) == 0x03)
    }

    @Test("IER keeps its low 4 bits, as Linux's IER probe expects")
    func ierBits() {
        let (u, _) = make()
        u.write(1, 0xff); #expect(u.read(1) == 0x0f)
        u.write(1, 0x00); #expect(u.read(1) == 0x00)
    }

    @Test("FCR: FIFO enable shows in IIR bits 7:6 (0xc1), disable gives 0x01")
    func fifoEnable() {
        let (u, _) = make()
        u.write(2, 0x01); #expect(u.read(2) == 0xc1)
        u.write(2, 0x00); #expect(u.read(2) == 0x01)
    }

    @Test("loopback: MSR follows MCR (0x1a gives 0x90 like Linux's check), THR loops into RBR")
    func loopback() {
        let (u, w) = make()
        u.write(4, 0x1a)
        #expect(u.read(6) & 0xf0 == 0x90)
        u.write(4, 0x1f)
        #expect(u.read(6) & 0xf0 == 0xf0)
        u.write(0, 0x42)
        #expect(w.all.isEmpty)
        #expect(u.read(5) == 0x61)
        #expect(u.read(0) == 0x42)
        #expect(u.read(5) == 0x60)
    }

    @Test("MSR in loopback is MCR's outputs with no delta bits, and 0xb0 again after, as QEMU's")
    func loopbackModemStatus() {
        let (u, w) = make()
        u.write(1, 0x08)         // IER.MSI: no modem interrupt either
        u.write(4, 0x1e)         // loopback, RTS, OUT1, OUT2: CTS, RI, DCD
        #expect([u.read(6), u.read(6)] == [0xd0, 0xd0]) // latched deltas read 0xd2, 0xd0
        u.write(4, 0x10)         // all outputs off
        #expect(u.read(6) == 0x00)
        u.write(4, 0x00)         // loopback left: the host's lines, unchanged
        #expect([u.read(6), u.read(6)] == [0xb0, 0xb0]) // 0xb6, 0xb0 before
        #expect(u.read(2) == 0x01)
        #expect(w.edges.isEmpty)
    }

    @Test("overrun: a full FIFO (16) in loopback loses the 17th byte and LSR reports OE once")
    func fifoOverrun() {
        let (u, _) = make()
        u.write(2, 0x07)
        u.write(4, 0x10)
        for i in 0..<20 { u.write(0, UInt8(i)) }
        #expect(u.read(5) == 0x63)
        #expect(u.read(5) == 0x61)
        var got: [UInt8] = []
        while u.read(5) & 1 != 0 { got.append(u.read(0)) }
        #expect(got == (0..<16).map(UInt8.init))
    }

    @Test("without FIFOs the RBR holds one byte: the second overruns and overwrites it")
    func rbrOverrun() {
        let (u, _) = make()
        u.write(4, 0x10)
        u.write(0, 1); u.write(0, 2)
        #expect(u.read(5) == 0x63)
        #expect(u.read(0) == 2)
        #expect(u.read(5) == 0x60)
    }

    @Test("host input waits for the guest to receive (RTS) and for room: never an overrun, every byte in order")
    func hostInputFlowControl() {
        let (u, _) = make()
        u.receive(Array(0..<40).map(UInt8.init))
        #expect(u.queuedInput == 40) // the guest shows no sign of receiving: the host holds its bytes
        #expect(u.read(5) == 0x60)   // one LSR read, as a polled writer's before THR
        u.write(0, 0x41)
        #expect(u.read(5) == 0x60)
        u.write(2, 0x07)             // its init's FIFO reset finds nothing to discard
        #expect(u.queuedInput == 40)
        u.write(4, 0x03)             // DTR|RTS: the driver opened the port
        #expect(u.queuedInput == 24) // FIFOs on: 16 bytes in
        u.write(4, 0x00)             // from then on regardless of RTS, as QEMU's
        var got: [UInt8] = []
        while u.read(5) & 1 != 0 { got.append(u.read(0)) }
        #expect(got == (0..<40).map(UInt8.init))
        #expect(u.read(5) & 0x02 == 0)
    }

    @Test("input reaches a guest that never writes MCR: its LSR.DR poll, an RBR read or IER.RDI opens the flow", arguments: [0, 1, 2])
    func inputWithoutRTS(sign: Int) {
        let (u, w) = make()
        u.receive([0x61, 0x62])
        #expect(u.read(4) == 0x08)   // MCR as reset: no RTS
        switch sign {
        case 0: #expect([u.read(5), u.read(5)] == [0x60, 0x61]) // the second read of a poll
        case 1: #expect(u.read(0) == 0x00)                      // RBR read while empty
        default:
            u.write(1, 0x01)                                    // IER.RDI: interrupt-driven
            #expect(w.edges == [true])                          // IRQ 4 with MCR 0x08
        }
        #expect(u.read(5) == 0x61)
        #expect(u.read(0) == 0x61)
        #expect(u.read(0) == 0x62)
    }

    @Test("IIR priorities: line status 0xc6 > data 0xc4 / timeout 0xcc > THRE 0xc2")
    func iirPriorities() {
        let (u, _) = make()
        u.write(2, 0xc7) // FIFO, trigger 14
        u.write(1, 0x0f)
        #expect(u.read(2) == 0xc2) // THRE pending since IER.THRI was enabled
        #expect(u.read(2) == 0xc1) // reading IIR cleared it
        u.write(4, 0x10)           // loopback: no modem interrupt (QEMU latches no deltas)
        #expect(u.read(2) == 0xc1)
        u.write(0, 0x41)           // one byte below the trigger level: timeout
        #expect(u.read(2) == 0xcc)
        for _ in 0..<13 { u.write(0, 0x41) }
        #expect(u.read(2) == 0xc4) // 14 bytes: trigger level reached
        for _ in 0..<3 { u.write(0, 0x41) }
        #expect(u.read(2) == 0xc6) // overrun
        _ = u.read(5)
        #expect(u.read(2) == 0xc4)
    }

    @Test("IRQ line as QEMU's: IER.THRI with MCR 0x03 (or never written) raises it; OUT2 gates it only when asked")
    func irqLine() {
        for mcr: UInt8? in [0x03, nil, 0x13] {
            let (q, qw) = make()
            if let mcr { q.write(4, mcr) }
            q.write(1, 0x02)
            #expect(qw.edges == [true], "MCR \(String(describing: mcr))") // loopback too
        }
        let (u, w) = make(gated: true)
        u.write(1, 0x01)
        u.write(4, 0x02)
        u.receive([0x61])
        #expect(w.edges.isEmpty)    // OUT2 off: the PC gate holds the line low
        u.write(4, 0x0a)
        #expect(w.edges == [true])
        _ = u.read(0)
        #expect(w.edges == [true, false])
        let (m, mw) = make(gated: false)
        m.write(1, 0x01)
        m.write(4, 0x02)
        m.receive([0x61])
        #expect(mw.edges == [true]) // no gate
    }

    @Test("THRE interrupt: enabling IER.THRI raises it, reading IIR lowers it, writing THR re-arms it")
    func thriCycle() {
        let (u, w) = make(gated: false)
        u.write(1, 0x02)
        #expect(w.edges == [true])
        #expect(u.read(2) == 0x02)
        #expect(w.edges == [true, false])
        u.write(0, 0x41)
        #expect(w.edges == [true, false, true])
    }
}

/// Decodes fed hostile values (a guest's offset, a config's shift, a caller's size):
/// each picks a register or nothing, never traps.
@Suite("16550A register model: hostile decodes")
struct UARTHostileDecodeTests {
    @Test("any MMIO offset and shift decode to one of the eight registers")
    func mmioDecode() {
        let uart = UART16550(transmit: { _ in })
        uart.write(7, 0x5a) // SCR
        #expect(uart.mmioAccess(offset: 7, shift: 0, write: nil) == 0x5a)
        #expect(uart.mmioAccess(offset: UInt64.max, shift: 0, write: nil) == 0x5a) // low 3 bits: 7
        #expect(uart.mmioAccess(offset: 0x1c, shift: 2, write: nil) == 0x5a)
        #expect(uart.mmioAccess(offset: 7, shift: -1, write: nil) == 0x5a)         // a negative shift counts as 0
        #expect(uart.mmioAccess(offset: 1 << 63 | 7, shift: 200, write: nil) == uart.read(1)) // clamped to 63
    }

    @Test("port accesses with any first register and size touch only registers 0...7")
    func portDecode() {
        let uart = UART16550(transmit: { _ in })
        uart.write(7, 0x11)
        #expect(uart.portAccess(first: 7, size: 4, write: nil) == 0x11)
        #expect(uart.portAccess(first: -1, size: 4, write: nil) == 0)
        #expect(uart.portAccess(first: Int.max, size: 4, write: 0xffff_ffff) == 0)
        #expect(uart.portAccess(first: 7, size: -3, write: nil) == 0)
        #expect(uart.portAccess(first: 6, size: Int.max, write: nil) == UInt32(uart.read(6)) | 0x11 << 8)
        #expect(uart.read(7) == 0x11)
    }
}
