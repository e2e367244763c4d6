import Glibc
import Testing
@testable import UART16550

@Suite("UART configuration")
struct UARTConfigTests {
    @Test("defaults: COM1 at 0x3f8, IRQ 4, stdout, no input, not coalesced")
    func defaults() throws {
        let c = try UARTConfig.parse("")
        #expect(c == UARTConfig(name: "com1", placement: .pio(port: 0x3f8), irq: 4, output: .stdout, input: .none, coalesce: false))
        #expect(c.span == 8)
    }

    @Test("every key parses")
    func allKeys() throws {
        let c = try UARTConfig.parse("name=uart0, mmio=0xd0001000,shift=2,irq=5,output=file:/tmp/x.log,input=buffer,coalesce=on")
        #expect(c.name == "uart0")
        #expect(c.placement == .mmio(address: 0xd000_1000, shift: 2))
        #expect(c.span == 32)
        #expect(c.irq == 5)
        #expect(c.output == .file("/tmp/x.log"))
        #expect(c.input == .buffer)
        #expect(c.coalesce)
        #expect(try UARTConfig.parse("port=0x2f8,irq=3").placement == .pio(port: 0x2f8))
        #expect(try UARTConfig.parse("txbuffer=0x4000000").txBuffer == 64 << 20)
        #expect(try UARTConfig.parse("").txBuffer == 1 << 20)
        #expect(try UARTConfig.parse("mmio=0B1000000000000,shift=0O1,irq=0X0f").placement == .mmio(address: 0x1000, shift: 1))
        #expect(try UARTConfig.parse("port=760,irq=007").placement == .pio(port: 760))
    }

    @Test("refusals name the key", arguments: [
        ("baud=9600", "baud", "uart: unknown key 'baud' (known keys: port, mmio, shift, irq, output, input, coalesce, name, txbuffer)"),
        ("mmio=0xd0000000,shift=3", "shift", "uart: bad value '3' for key 'shift' (the MMIO register shift must be 0, 1 or 2)"),
        ("port=0x2f8,shift=1", "shift", "uart: key 'shift' applies only to an MMIO UART (give key 'mmio')"),
        ("port=0x3f8,mmio=0x1000", "mmio", "uart: key 'mmio' cannot be combined with key 'port'"),
        ("port=0x10000", "port", "uart: bad value '0x10000' for key 'port' (a port base, 0..0xfff8)"),
        ("port=zz", "port", "uart: bad value 'zz' for key 'port' (a port base, 0..0xfff8)"),
        ("irq=4,irq=3", "irq", "uart: key 'irq' given twice"),
        ("output=printer", "output", "uart: bad value 'printer' for key 'output' (stdout, stderr, buffer, none or file:PATH)"),
        ("input=keyboard", "input", "uart: bad value 'keyboard' for key 'input' (none, stdin, buffer or file:PATH)"),
        ("coalesce=maybe", "coalesce", "uart: bad value 'maybe' for key 'coalesce' (on or off)"),
        ("port", "port", "uart: expected key=value, got 'port'"),
        ("txbuffer=0", "txbuffer", "uart: bad value '0' for key 'txbuffer' (bytes, 1..64 MiB)"),
        ("txbuffer=0x4000001", "txbuffer", "uart: bad value '0x4000001' for key 'txbuffer' (bytes, 1..64 MiB)"),
        ("txbuffer=18446744073709551616", "txbuffer", "uart: bad value '18446744073709551616' for key 'txbuffer' (bytes, 1..64 MiB)"),
    ])
    func refusals(text: String, key: String, message: String) {
        #expect(throws: UARTConfigError(message, key: key)) { try UARTConfig.parse(text) }
    }

    @Test("a number is digits of its radix only: no sign, space or stray prefix", arguments: [
        ("irq=+5", "irq", "uart: bad value '+5' for key 'irq' (an IRQ line, 0..23)"),
        ("irq=-0", "irq", "uart: bad value '-0' for key 'irq' (an IRQ line, 0..23)"),
        ("port=0x+3f8", "port", "uart: bad value '0x+3f8' for key 'port' (a port base, 0..0xfff8)"),
        ("port=+0x3f8", "port", "uart: bad value '+0x3f8' for key 'port' (a port base, 0..0xfff8)"),
        ("port=0x", "port", "uart: bad value '0x' for key 'port' (a port base, 0..0xfff8)"),
        ("port=0x3 f8", "port", "uart: bad value '0x3 f8' for key 'port' (a port base, 0..0xfff8)"),
        ("mmio=0x-0", "mmio", "uart: bad value '0x-0' for key 'mmio' (a guest-physical address)"),
        ("mmio=0b102", "mmio", "uart: bad value '0b102' for key 'mmio' (a guest-physical address)"),
        ("mmio=0o78", "mmio", "uart: bad value '0o78' for key 'mmio' (a guest-physical address)"),
        ("mmio=0x1000,shift=+1", "shift", "uart: bad value '+1' for key 'shift' (the MMIO register shift must be 0, 1 or 2)"),
        ("txbuffer=+4096", "txbuffer", "uart: bad value '+4096' for key 'txbuffer' (bytes, 1..64 MiB)"),
    ])
    func signedNumbers(text: String, key: String, message: String) {
        #expect(throws: UARTConfigError(message, key: key)) { try UARTConfig.parse(text) }
    }

    @Test("overlapping windows are refused, naming the later UART's key")
    func overlaps() throws {
        let com1 = try UARTConfig.parse("name=com1,port=0x3f8")
        let clash = try UARTConfig.parse("name=com9,port=0x3fc")
        #expect(throws: UARTConfigError("uart 'com9': key 'port' = 0x3fc overlaps uart 'com1' at 0x3f8..0x3ff", key: "port")) {
            try UARTConfig.checkOverlaps([com1, clash])
        }
        let m1 = try UARTConfig.parse("name=a,mmio=0x1000,shift=2")
        let m2 = try UARTConfig.parse("name=b,mmio=0x1010")
        #expect(throws: UARTConfigError("uart 'b': key 'mmio' = 0x1010 overlaps uart 'a' at 0x1000..0x101f", key: "mmio")) {
            try UARTConfig.checkOverlaps([m1, m2])
        }
        // Same number in different spaces, and adjacent windows, are fine.
        try UARTConfig.checkOverlaps([com1, try UARTConfig.parse("mmio=0x3f8"), try UARTConfig.parse("name=com2,port=0x400")])
    }

    @Test("an output file that cannot be opened is refused at init, naming the key and path")
    func badOutputFile() {
        #expect(throws: UARTConfigError("uart: key 'output': cannot open '/nonexistent/dir/log': No such file or directory (errno 2)", key: "output")) {
            _ = try UARTOutputSink(.file("/nonexistent/dir/log"))
        }
    }

    @Test("file output receives exactly the bytes, flushed on close")
    func fileOutput() throws {
        let path = "/tmp/uart-test-\(getpid()).log"
        defer { unlink(path) }
        let sink = try UARTOutputSink(.file(path))
        for b in "line one\npartial".utf8 { sink.write(b) }
        sink.close()
        let f = fopen(path, "r")!
        defer { fclose(f) }
        var bytes: [UInt8] = []
        while true { let c = fgetc(f); if c == EOF { break }; bytes.append(UInt8(c)) }
        #expect(String(decoding: bytes, as: UTF8.self) == "line one\npartial")
    }
}
