import Testing
@testable import UART16550

/// The UART's snapshot blob (UART16550+State.swift): a restored UART reads back as the
/// saved one did; a damaged blob is refused whole.
@Suite("16550A state save and restore")
struct UARTStateTests {
    func make() -> UART16550 { UART16550(transmit: { _ in }) }

    @Test("registers, FIFO contents and queued host input survive a save and restore")
    func roundTrip() throws {
        let a = make()
        a.write(3, 0x03)        // LCR 8N1
        a.write(2, 0xc7)        // FCR: FIFOs on, trigger 14
        a.write(4, 0x0b)        // MCR DTR RTS OUT2
        a.write(1, 0x05)        // IER RDI RLSI
        a.write(7, 0x5a)        // SCR
        a.receive(Array("hello, snapshot".utf8) + Array(repeating: 0x41, count: 20))
        let blob = a.savedState()
        let b = make()
        try b.restoreState(blob)
        #expect(b.savedState() == blob)
        #expect((1...7).map { b.read($0) } == (1...7).map { a.read($0) })
        var readA: [UInt8] = [], readB: [UInt8] = []
        for _ in 0..<35 { readA.append(a.read(0)); readB.append(b.read(0)) }
        #expect(readA == readB)
        #expect(readB.prefix(5) == Array("hello".utf8)[...])
    }

    @Test("a truncated, oversized or inconsistent blob is refused and the UART is unchanged")
    func refusals() {
        let a = make()
        a.write(7, 0x11)
        var blob = a.savedState()
        let before = a.savedState()
        #expect(throws: UART16550.StateError.self) { try a.restoreState(Array(blob.dropLast())) }
        #expect(throws: UART16550.StateError.self) { try a.restoreState(blob + [0]) }
        blob[13] = 9            // 9 bytes in a 1-byte RBR
        #expect(throws: UART16550.StateError.self) { try a.restoreState(blob) }
        #expect(throws: UART16550.StateError.self) { try a.restoreState([]) }
        #expect(a.savedState() == before)
    }

    @Test("a blob holding what no register write sets is refused, naming it: IER or MCR high bits, a FIFO size against FCR")
    func impossibleRegisters() throws {
        let a = make()
        let blob = a.savedState()
        func refusal(_ patch: (inout [UInt8]) -> Void) -> String? {
            var b = blob
            patch(&b)
            do { try a.restoreState(b) } catch { return error.description }
            return nil
        }
        #expect(refusal { $0[0] = 0x1f } == "uart state: IER 0x1f has bits 7:4 set, which no write sets")
        #expect(refusal { $0[2] = 0x20 } == "uart state: MCR 0x20 has bits 7:5 set, which no write sets")
        #expect(refusal { $0[6] = 1 } == "uart state: receive FIFO of 1 holding 0 with FIFOs on")
        #expect(refusal { $0[12] = 16 } == "uart state: receive FIFO of 16 holding 0 with FIFOs off")
        #expect(a.savedState() == blob)
        // What the registers can reach restores: FIFOs on (FCR), every IER and MCR bit.
        a.write(2, 0x01); a.write(1, 0x0f); a.write(4, 0x1f)
        let reached = a.savedState()
        try make().restoreState(reached)
    }
}
