import Glibc
import Testing
@testable import UART16550

/// `InputPump`: host input (stdin, a file) read only as fast as the guest takes it.
@Suite("UART input pump")
struct InputPumpTests {
    @Test("the pump holds at most inputQueueLimit bytes of a large input; the rest stays in the file until the guest reads, then all of it arrives in order")
    func backpressure() throws {
        let total = 1 << 20
        let data = (0..<total).map { UInt8(truncatingIfNeeded: $0 ^ ($0 >> 8) ^ ($0 >> 16)) }
        let path = "/tmp/vmm-uart-pump-\(getpid()).bin"
        let out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        try #require(out >= 0)
        defer { unlink(path) }
        #expect(data.withUnsafeBytes { write(out, $0.baseAddress!, total) } == total)
        close(out)

        let uart = UART16550(transmit: { _ in })
        let pump = try InputPump(path: path, into: uart)
        try pump.start()
        defer { pump.stop() }
        // RTS is not asserted yet: the guest takes nothing, so the pump fills the queue and stops.
        #expect(eventually { uart.queuedInput == UART16550.inputQueueLimit })
        #expect(lseek(pump.fd, 0, SEEK_CUR) == off_t(UART16550.inputQueueLimit), "read past the queue's room")

        uart.write(2, 0x07) // FIFOs on
        uart.write(4, 0x03) // DTR|RTS: the driver opened the port
        var got: [UInt8] = []
        got.reserveCapacity(total)
        var idle = 0
        while got.count < total, idle < 300_000 { // a minute without a byte: the pump is stuck
            if uart.read(5) & 1 != 0 { got.append(uart.read(0)); idle = 0; continue }
            #expect(uart.queuedInput <= UART16550.inputQueueLimit)
            idle += 1
            usleep(200) // the pump refills once half the queue is taken
        }
        #expect(got.count == total)
        #expect(got == data, "bytes lost, duplicated or reordered")
        #expect(uart.read(5) & 0x02 == 0, "overrun")
    }

    @Test("a queue far larger than its compaction step pops every byte in order, moving each at most about once (it moved the whole rest every 4096 bytes: quadratic)")
    func ringOrder() {
        var ring = ByteRing(capacity: 0)
        for i in 0..<100_000 { ring.pushGrowing(UInt8(truncatingIfNeeded: i)) }
        var popped = 0, inOrder = true
        // Interleaved pushes keep the queue long while the head moves on.
        while let byte = ring.pop() {
            if byte != UInt8(truncatingIfNeeded: popped) { inOrder = false }
            if popped < 50_000 { ring.pushGrowing(UInt8(truncatingIfNeeded: popped + 100_000)) }
            popped += 1
        }
        #expect(popped == 150_000 && inOrder && ring.isEmpty)
        #expect(ring.compactedBytes <= popped, "compaction moved \(ring.compactedBytes) bytes for \(popped) popped")
    }
}
