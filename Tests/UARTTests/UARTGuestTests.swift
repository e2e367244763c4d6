import Glibc
import Testing
@testable import UART16550
import UARTVMM
@testable import VMMKit

/// Guests driving the UART on real KVM: what a person at the console would see.
@Suite("16550A UART with real guests", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct UARTGuestTests {
    static let probeReport = "16550A probe: ier=00/0f loopback-msr=90 scr=a5/5a iir-fifo=c1 iir-nofifo=01 dl=0c/34 "
        + "lsr-overrun=63 fifo-size=10 iir-thri=c2/c1 iir-rx=cc/c4/c1\nHello from a guest that probed its 16550A!\n"

    @Test("a guest probing like Linux's 8250 driver (PIO COM1) sees a 16550A and prints exactly",
          arguments: ["port=0x3f8", "port=0x2f8,irq=3"])
    func probePIO(config: String) throws {
        let guest = try UARTGuest("uart_probe")
        let uart = try guest.attach(config + ",output=buffer")[0]
        try guest.target(uart.config)
        #expect(try guest.run() == .guestExit(code: 0))
        #expect(text(uart.captured) == Self.probeReport)
    }

    @Test("the same probe on an MMIO UART with register shift 0, 1 and 2", arguments: [0, 1, 2])
    func probeMMIO(shift: Int) throws {
        let guest = try UARTGuest("uart_probe")
        let uart = try guest.attach("mmio=0xd0001000,shift=\(shift),output=buffer")[0]
        try guest.target(uart.config)
        #expect(try guest.run() == .guestExit(code: 0))
        #expect(text(uart.captured) == Self.probeReport)
    }

    @Test("a guest reads a line typed on the host side and echoes it")
    func echoLine() throws {
        let guest = try UARTGuest("uart_echo")
        let uart = try guest.attach("port=0x3f8,output=buffer,input=buffer")[0]
        try guest.target(uart.config)
        try guest.vcpu.start(guest.dispatcher)
        // A person types after the prompt (the guest's FIFO reset would discard earlier
        // bytes, as on hardware), a few bytes at a time while the guest polls.
        while text(uart.captured) != "type a line: " { sleepMilliseconds(1) }
        for chunk in ["hello", ", ", "uart", "\r"] {
            uart.receive(chunk.utf8)
            sleepMilliseconds(2)
        }
        #expect(guest.vcpu.join() == .guestExit(code: 11))
        #expect(text(uart.captured) == "type a line: hello, uart\nyou typed: hello, uart\n")
    }

    @Test("a polled guest that never writes MCR gets input piped before it started, all of it (QEMU feeds it at once)")
    func echoWithoutMCR() throws {
        let guest = try UARTGuest("uart_echo")
        let uart = try guest.attach("port=0x3f8,output=buffer,input=buffer")[0]
        try guest.target(uart.config)
        try guest.editRegisters { $0.r15 = 0x100 } // MCR stays 0x08: no RTS
        // Before, input waited for RTS and the guest polled LSR.DR for ever. Held until
        // its LSR poll, the line also escapes the guest's FIFO reset.
        uart.receive("early\r".utf8)
        #expect(try guest.run() == .guestExit(code: 5))
        #expect(text(uart.captured) == "type a line: early\nyou typed: early\n")
    }

    @Test("two UARTs in one VM, PIO and MMIO, each with its own output")
    func twoUARTs() throws {
        let guest = try UARTGuest("uart_two")
        let uarts = try guest.attach("name=com1,port=0x3f8,output=buffer", "name=soc,mmio=0xd0002000,shift=2,output=buffer")
        try guest.target(uarts[0].config)
        try guest.editRegisters { $0.r8 = 0xd000_2000; $0.r9 = 2 }
        #expect(try guest.run() == .guestExit(code: 0))
        #expect(text(uarts[0].captured) == "first UART, line 1\nfirst UART, line 2\n")
        #expect(text(uarts[1].captured) == "second UART, line 1\nsecond UART, line 2\n")
    }

    /// The bytes `uart_bulk` sends.
    static func bulkPattern(_ count: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ ($0 >> 8)) }
    }

    private func bulk(_ config: String, bytes: Int) throws -> (output: [UInt8], exits: UInt64) {
        let guest = try UARTGuest("uart_bulk")
        let uart = try guest.attach(config)[0]
        try guest.target(uart.config)
        try guest.editRegisters { $0.r15 = UInt64(bytes) }
        #expect(try guest.run() == .guestExit(code: 0))
        return (uart.captured, guest.vcpu.exitCount)
    }

    @Test("1 MiB through a coalesced THR: the same bytes in the same order as uncoalesced, far fewer exits")
    func coalescedMiB() throws {
        let size = 1 << 20
        let plain = try bulk("mmio=0xd0003000,output=buffer", bytes: size)
        let fast = try bulk("mmio=0xd0003000,output=buffer,coalesce=on", bytes: size)
        let expected = Self.bulkPattern(size)
        #expect(plain.output.count == size)
        #expect(plain.output == expected)
        #expect(fast.output == plain.output)
        // Uncoalesced: one exit per byte plus one LSR read per 16 bytes (and the exit port).
        #expect(plain.exits == UInt64(size + size / 16 + 1))
        // Coalesced: only the LSR reads and the exit port leave the guest.
        #expect(fast.exits == UInt64(size / 16 + 1))
    }

    @Test("coalesced PIO THR gives the same bytes too")
    func coalescedPIO() throws {
        let size = 64 << 10
        let fast = try bulk("port=0x3f8,output=buffer,coalesce=on", bytes: size)
        #expect(fast.output == Self.bulkPattern(size))
        #expect(fast.exits == UInt64(size / 16 + 1))
    }

    @Test("interrupt-driven receive: KVM_IRQ_LINE on IRQ 4 wakes the guest's handler through the 8259")
    func interruptDrivenReceive() throws {
        let guest = try UARTGuest("uart_irq_echo", ring: 0, irqchip: true)
        let uart = try guest.attach("port=0x3f8,irq=4,output=buffer,input=buffer")[0]
        let ready = Recorder()
        try guest.dispatcher.registerPIO(port: 0x10, owner: "test") { _, _ in ready.mark(); return .handled }
        try guest.vcpu.start(guest.dispatcher)
        while !ready.marked { sleepMilliseconds(1) }
        // One byte at a time, each after the guest's handler drained the previous one and
        // found the FIFO empty (its count at 0x2000c): three separate interrupts, each one
        // an edge on the line. Waiting only for the interrupt count (0x20008, bumped on
        // entry) raced: a byte sent while the handler still drained was read in the same
        // interrupt, and the next IIR read said "none pending".
        for (i, byte) in "hi\n".utf8.enumerated() {
            uart.receive([byte])
            while try guest.vm.memory.read(0x2000c, as: UInt32.self) < UInt32(i + 1) { sleepMilliseconds(1) }
        }
        #expect(guest.vcpu.join() == .guestExit(code: 3))
        #expect(text(uart.captured) == "hi\n")
        #expect(try guest.vm.memory.readBytes(0x20010, count: 3) == [0xc4, 0xc4, 0xc4])
        #expect(uart.uart.irqLevel == false)
    }

    @Test("IRQ 4 reaches a guest with MCR 0x03 (no OUT2) or MCR never written, as under QEMU", arguments: [0x03, 0x100])
    func interruptsWithoutOUT2(mcr: UInt64) throws {
        let guest = try UARTGuest("uart_irq_echo", ring: 0, irqchip: true)
        let uart = try guest.attach("port=0x3f8,irq=4,output=buffer,input=buffer")[0]
        try guest.dispatcher.registerPIO(port: 0x10, owner: "test") { _, _ in .handled }
        try guest.editRegisters { $0.r15 = mcr }
        // Sent before the guest started: held until it enables IER.RDI, so none is lost
        // in its FIFO reset. Before, OUT2 gated the line and the guest slept for ever.
        uart.receive("hi\n".utf8)
        let reason = try guest.run()
        guard case let .guestExit(interrupts) = reason else { Issue.record("stopped: \(reason)"); return }
        #expect((1...3).contains(interrupts))
        #expect(text(uart.captured) == "hi\n")
    }

    @Test("UARTs with file output, run and closed, leave no fd behind; the file holds the console")
    func fileOutputNoLeak() throws {
        let path = "/tmp/uart-guest-\(getpid()).log"
        defer { unlink(path) }
        func once() throws {
            let guest = try UARTGuest("uart_probe")
            let uart = try guest.attach("port=0x3f8,output=file:\(path)", "mmio=0xd0000000,output=file:\(path).2")[0]
            try guest.target(uart.config)
            #expect(try guest.run() == .guestExit(code: 0))
        }
        try once()
        unlink(path + ".2")
        for _ in 0..<10 { try once() }
        unlink(path + ".2")
        #expect(fdsOpen(on: path) == 0)
        let f = try #require(fopen(path, "r"))
        defer { fclose(f) }
        var bytes: [UInt8] = []
        while true { let c = fgetc(f); if c == EOF { break }; bytes.append(UInt8(c)) }
        #expect(text(bytes) == Self.probeReport)
    }

    @Test("bad configurations are refused before anything is registered, naming the key")
    func badConfigs() throws {
        let guest = try UARTGuest("uart_probe")
        #expect(throws: UARTConfigError("uart 'com2': key 'port' = 0x3fc overlaps uart 'com1' at 0x3f8..0x3ff", key: "port")) {
            _ = try guest.attach("name=com1,port=0x3f8,output=buffer", "name=com2,port=0x3fc,output=buffer")
        }
        #expect(throws: UARTConfigError("uart: bad value '4' for key 'shift' (the MMIO register shift must be 0, 1 or 2)", key: "shift")) {
            _ = try guest.attach("mmio=0xd0000000,shift=4")
        }
        #expect(throws: UARTConfigError("uart: unknown key 'speed' (known keys: port, mmio, shift, irq, output, input, coalesce, name, txbuffer)", key: "speed")) {
            _ = try guest.attach("port=0x3f8,speed=115200")
        }
        // Nothing was registered: COM1 is still free for a good configuration.
        let uart = try guest.attach("port=0x3f8,output=buffer")[0]
        try guest.target(uart.config)
        #expect(try guest.run() == .guestExit(code: 0))
        #expect(text(uart.captured) == Self.probeReport)
    }
}

final class Recorder: @unchecked Sendable {
    private let flag = Lock(false)
    func mark() { flag.withLock { $0 = true } }
    var marked: Bool { flag.withLock { $0 } }
}

/// This process's fds open on `path` or a file whose name begins with it. (Counting all
/// fds compared the whole process, where an earlier test's object may close its own.)
func fdsOpen(on path: String) -> Int {
    var target = [UInt8](repeating: 0, count: 512)
    return (0..<4096).reduce(0) { n, fd in
        let length = target.withUnsafeMutableBufferPointer {
            readlink("/proc/self/fd/\(fd)", UnsafeMutableRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self), 511)
        }
        return length > 0 && String(decoding: target.prefix(length), as: UTF8.self).hasPrefix(path) ? n + 1 : n
    }
}
