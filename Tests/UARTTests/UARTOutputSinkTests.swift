import Glibc
import Synchronization
import Testing
@testable import UART16550

/// A console that falls behind: the sink buffers, never blocks the caller (a vCPU in its
/// handler), tells the UART when it is full and again when it has room, and reports what
/// it dropped or could not deliver.
@Suite("UART output sink and a console that falls behind")
struct UARTOutputSinkTests {
    /// A one-page pipe whose read end the test holds; the sink writes to the other end.
    final class Console {
        let read: Int32, write: Int32
        static let size = 4096
        init() {
            var fds: [Int32] = [0, 0]
            precondition(pipe(&fds) == 0)
            (read, write) = (fds[0], fds[1])
            precondition(fcntl(write, 1031 /* F_SETPIPE_SZ */, Int32(Self.size)) == Self.size)
        }
        deinit { close(read); close(write) }
        var path: String { "/proc/self/fd/\(write)" }
        /// Bytes written and not yet read.
        var queued: Int32 { var n: Int32 = 0; _ = ioctl(read, UInt(FIONREAD), &n); return n }

        /// Reads until `total` bytes have arrived, or none has for 10 s (a failing sink: the
        /// test then fails on the count instead of hanging).
        func take(_ total: Int) -> [UInt8] {
            var bytes: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 65536)
            while bytes.count < total {
                var p = pollfd(fd: read, events: Int16(POLLIN), revents: 0)
                guard poll(&p, 1, 10_000) == 1 else { break }
                let n = chunk.withUnsafeMutableBytes { Glibc.read(read, $0.baseAddress!, min($0.count, total - bytes.count)) }
                if n < 0, errno == EINTR { continue }
                guard n > 0 else { break }
                bytes += chunk[0..<n]
            }
            return bytes
        }
    }

    @Test("an unread console: writes never block, a full buffer drops and counts, reading frees room and delivers the rest")
    func unreadConsole() throws {
        let console = Console()
        let sink = try UARTOutputSink(.file(console.path), capacity: 4096)
        let rooms = Atomic<Int>(0)
        sink.onRoom { rooms.add(1, ordering: .relaxed) }
        // 50 times what the pipe and the buffer hold; before, write(2) blocked here for good.
        var sent = 0
        for i in 0..<40_000 { for b in "line \(i)\n".utf8 { sink.write(b); sent += 1 } }
        let dropped = Int(sink.dropped)
        #expect(dropped >= sent - 2 * 4096)

        // Reading makes room: the sink says so, and everything it kept arrives, in order.
        let first = console.take(Console.size)
        #expect(first.starts(with: Array("line 0\nline 1\n".utf8)))
        #expect(eventually { rooms.load(ordering: .relaxed) > 0 })
        sink.close()
        let rest = console.take(sent - dropped - first.count)
        #expect(first.count + rest.count == sent - dropped)
        #expect(console.queued == 0)
        #expect(sink.undelivered == 0 && sink.failure == nil)
        #expect(sink.lossReport(name: "com1") == ["com1: the console fell behind: \(dropped) bytes the guest wrote while the 4096-byte output buffer was full were dropped"])
    }

    @Test("close() gives up on a console that takes nothing, and says how much it did not deliver")
    func closeGivesUp() throws {
        let console = Console()
        // A console that already holds all it can: the sink's writer blocks on its first write.
        let full = [UInt8](repeating: UInt8(ascii: "x"), count: Console.size)
        #expect(full.withUnsafeBytes { Glibc.write(console.write, $0.baseAddress!, $0.count) } == Console.size)
        let sink = try UARTOutputSink(.file(console.path), capacity: 4096, closeWait: 0.1)
        while sink.isReady { sink.write(UInt8(ascii: "y")) }
        sink.close() // returns: the writer is still blocked on the full pipe
        #expect(sink.undelivered == 4096 && sink.dropped == 0)
        #expect(sink.lossReport(name: "com2") == ["com2: the console did not take the last 4096 bytes of output within 0.1 s at shutdown; they were not delivered"])
        // Reading unblocks the writer, which then delivers the rest and ends.
        #expect(console.take(Console.size + sink.undelivered).count == Console.size + 4096)
    }

    /// A `ThreadStarter` that counts its calls and starts the thread with pthread_create,
    /// or fails with `failing`.
    final class Starter: @unchecked Sendable {
        let calls = Atomic<Int>(0)
        let failing: Int32?
        init(failing: Int32? = nil) { self.failing = failing }
        var start: UARTOutputSink.ThreadStarter {
            { entry, argument in
                self.calls.add(1, ordering: .relaxed)
                if let failing = self.failing { return .failure(.init(errno: failing)) }
                var thread = pthread_t()
                let rc = pthread_create(&thread, nil, entry, argument)
                return rc == 0 ? .success(thread) : .failure(.init(errno: rc))
            }
        }
    }

    @Test("with a starter, a console that keeps up never gets a writer thread; close writes an unfinished line itself")
    func lazyWriterNeverNeeded() throws {
        let path = "/tmp/uart-sink-lazy-\(getpid())"
        defer { unlink(path) }
        let starter = Starter()
        let sink = try UARTOutputSink(.file(path), starter: starter.start)
        var sent: [UInt8] = []
        for i in 0..<200 { sent += Array("line \(i)\n".utf8) }
        sent += Array("no newline".utf8)
        for b in sent { sink.write(b) }
        sink.flush()
        #expect(starter.calls.load(ordering: .relaxed) == 0)
        sink.close()
        #expect(starter.calls.load(ordering: .relaxed) == 0)
        let f = try #require(fopen(path, "r"))
        defer { fclose(f) }
        var got: [UInt8] = []
        while true { let c = fgetc(f); if c == EOF { break }; got.append(UInt8(c)) }
        #expect(got == sent)
        #expect(sink.failure == nil && sink.undelivered == 0)
    }

    @Test("with a starter, the first batch a full console cannot take asks for the writer, once; everything arrives")
    func lazyWriterStartedOnce() throws {
        let console = Console()
        let full = [UInt8](repeating: UInt8(ascii: "x"), count: Console.size)
        #expect(full.withUnsafeBytes { Glibc.write(console.write, $0.baseAddress!, $0.count) } == Console.size)
        let starter = Starter()
        let sink = try UARTOutputSink(.file(console.path), capacity: 65536, starter: starter.start)
        var sent: [UInt8] = []
        for i in 0..<1000 { sent += Array("line \(i)\n".utf8) }
        for b in sent { sink.write(b) }
        #expect(starter.calls.load(ordering: .relaxed) == 1)
        let got = console.take(Console.size + sent.count)
        #expect(got == full + sent)
        sink.close()
        #expect(starter.calls.load(ordering: .relaxed) == 1)
        #expect(sink.failure == nil && sink.dropped == 0 && sink.undelivered == 0)
    }

    @Test("with a starter that cannot start the writer, the console fails in one line and the UART is not left waiting")
    func lazyWriterCannotStart() throws {
        let console = Console()
        let full = [UInt8](repeating: UInt8(ascii: "x"), count: Console.size)
        #expect(full.withUnsafeBytes { Glibc.write(console.write, $0.baseAddress!, $0.count) } == Console.size)
        let starter = Starter(failing: EAGAIN)
        let sink = try UARTOutputSink(.file(console.path), capacity: 16, starter: starter.start)
        let rooms = Atomic<Int>(0)
        sink.onRoom { rooms.add(1, ordering: .relaxed) }
        // The 16th byte fills the buffer: the batch goes to the writer, which cannot start.
        for _ in 0..<16 { sink.write(UInt8(ascii: "y")) }
        #expect(starter.calls.load(ordering: .relaxed) == 1)
        #expect(sink.isReady)
        #expect(rooms.load(ordering: .relaxed) == 1)
        sink.write(UInt8(ascii: "z"))
        sink.close()
        #expect(starter.calls.load(ordering: .relaxed) == 1)
        #expect(console.queued == Int32(Console.size))
        #expect(sink.lossReport(name: "com1") == ["com1: console output stopped, the guest's later output was lost: cannot start the output thread: Resource temporarily unavailable (errno 11)"])
    }

    /// The UART calls `send` under its own lock, and the room handler is its
    /// `transmitterRoom`, which takes that lock: called from there it deadlocked the vCPU.
    @Test("a UART whose console's writer cannot start: the THR write that fills the buffer returns (it deadlocked on the UART's lock), and THRE is set")
    func writerCannotStartUnderTheUART() throws {
        let console = Console()
        let full = [UInt8](repeating: UInt8(ascii: "x"), count: Console.size)
        #expect(full.withUnsafeBytes { Glibc.write(console.write, $0.baseAddress!, $0.count) } == Console.size)
        let starter = Starter(failing: EAGAIN)
        let sink = try UARTOutputSink(.file(console.path), capacity: 16, starter: starter.start)
        let uart = UART16550(send: { sink.send($0) }, ready: { sink.isReady })
        sink.onRoom { [weak uart] in uart?.transmitterRoom() }
        uart.write(1, 0x02) // IER: THRE interrupt
        for _ in 0..<17 { uart.write(0, UInt8(ascii: "y")) }
        #expect(starter.calls.load(ordering: .relaxed) == 1)
        #expect(uart.read(5) & 0x60 == 0x60, "THRE and TEMT: the failed console takes (and drops) everything")
        let iir = uart.read(2)
        #expect(iir & 0x0f == 0x02, "the THRE interrupt is pending: IIR \(iir)")
        sink.close()
        #expect(sink.failure != nil)
    }

    @Test("send answers isReady in the same call: the byte that fills the buffer clears THRE, room sets it again")
    func sendAnswersRoom() throws {
        let console = Console()
        let stuffing = [UInt8](repeating: UInt8(ascii: "."), count: Console.size)
        #expect(Glibc.write(console.write, stuffing, stuffing.count) == stuffing.count) // the console takes nothing now
        let sink = try UARTOutputSink(.file(console.path), capacity: 16)
        let uart = UART16550(send: { sink.send($0) }, ready: { sink.isReady })
        sink.onRoom { [weak uart] in uart?.transmitterRoom() }
        let text = Array("abcdefghijklmnop".utf8)
        for byte in text.dropLast() {
            uart.write(0, byte)
            #expect(uart.read(5) & 0x60 == 0x60) // LSR: THRE and TEMT, room for more
        }
        uart.write(0, text.last!)                // the 16th byte fills the buffer
        #expect(uart.read(5) & 0x60 == 0)
        #expect(!sink.send(UInt8(ascii: "!")))   // written anyway: dropped
        #expect(sink.dropped == 1)

        #expect(console.take(Console.size) == stuffing)
        #expect(eventually { uart.read(5) & 0x60 == 0x60 })
        #expect(sink.send(10))
        sink.close()
        #expect(console.take(text.count + 1) == text + [10])
        #expect(sink.failure == nil && sink.undelivered == 0)
    }

    @Test("a UART on a full sink: LSR clears THRE and TEMT, the THRE interrupt waits for room")
    func uartBackPressure() {
        let room = Atomic<Bool>(true)
        let irqs = Mutex<[Bool]>([])
        let uart = UART16550(transmit: { _ in }, ready: { room.load(ordering: .relaxed) },
                             irq: { level in irqs.withLock { $0.append(level) } })
        uart.write(4, 0x08)  // MCR.OUT2: the PC gate open
        uart.write(1, 0x02)  // IER.THRI: fires at once (THR empty)
        #expect(uart.read(2) == 0x02)   // IIR: THRI (the read clears it)
        room.store(false, ordering: .relaxed)
        uart.write(0, 0x41)
        #expect(uart.read(5) & 0x60 == 0)        // LSR: busy
        #expect(uart.read(2) == 0x01)            // no interrupt while the host has no room
        room.store(true, ordering: .relaxed)
        #expect(uart.read(5) & 0x60 == 0x60)
        uart.transmitterRoom()
        #expect(uart.read(2) == 0x02)
        #expect(irqs.withLock { $0 } == [true, false, true, false])
    }
}

func eventually(tries: Int = 30_000, _ condition: () throws -> Bool) rethrows -> Bool {
    for _ in 0..<tries {
        if try condition() { return true }
        usleep(2000)
    }
    return false
}
