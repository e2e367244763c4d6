import Glibc
import Testing
@testable import UART16550
@testable import VMMKit

/// The 16550A as a dlopen'd Swift plugin (libUART.so, built by SwiftPM) in real VMs.
@Suite("16550A UART plugin (dlopen)", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct UARTPluginTests {
    static let library = PluginSearchPath.packageRoot! + "/.build/debug/libUART.so"
    static let id = "'org.vmmkit.uart16550' (\(library))"

    /// A unique file per test and the bytes it held when read.
    final class TempFile {
        let path: String
        init(_ tag: String) { path = "/tmp/uart-plugin-\(getpid())-\(tag)" }
        deinit { unlink(path) }
        var bytes: [UInt8] {
            guard let f = fopen(path, "r") else { return [] }
            defer { fclose(f) }
            var out: [UInt8] = []
            while true { let c = fgetc(f); if c == EOF { break }; out.append(UInt8(c)) }
            return out
        }
        func write(_ text: String) {
            let f = fopen(path, "w")!
            fputs(text, f)
            fclose(f)
        }
    }

    func load(_ guest: UARTGuest, _ configs: String...) throws -> PluginHost {
        let host = PluginHost(vm: guest.vm, dispatcher: guest.dispatcher)
        for config in configs { try host.load(Self.library, config: config) }
        return host
    }

    @Test("the probe guest sees a 16550A through the plugin, PIO and MMIO (shift 2), output to a file",
          arguments: ["port=0x3f8", "mmio=0xd0001000,shift=2"])
    func probe(placement: String) throws {
        let out = TempFile("probe")
        let guest = try UARTGuest("uart_probe")
        let plugins = try load(guest, "\(placement),output=file:\(out.path)")
        try guest.target(try UARTConfig.parse(placement))
        #expect(try guest.run() == .guestExit(code: 0))
        plugins.close()
        #expect(text(out.bytes) == UARTGuestTests.probeReport)
        #expect(plugins.plugins.isEmpty)
    }

    @Test("two plugin instances, PIO and MMIO, each with its own output")
    func twoInstances() throws {
        let a = TempFile("a"), b = TempFile("b")
        let guest = try UARTGuest("uart_two")
        let plugins = try load(guest, "name=com1,port=0x3f8,output=file:\(a.path)",
                               "name=soc,mmio=0xd0002000,shift=2,output=file:\(b.path)")
        try guest.target(try UARTConfig.parse("port=0x3f8"))
        try guest.editRegisters { $0.r8 = 0xd000_2000; $0.r9 = 2 }
        #expect(try guest.run() == .guestExit(code: 0))
        plugins.close()
        #expect(text(a.bytes) == "first UART, line 1\nfirst UART, line 2\n")
        #expect(text(b.bytes) == "second UART, line 1\nsecond UART, line 2\n")
    }

    /// `PluginHost.threadStarter` for the tests: counts its calls and names the threads
    /// they came from, then starts the thread in place (these vCPUs run without seccomp).
    final class Starter: @unchecked Sendable {
        private let callers = UARTLock<[String]>([])
        var calls: [String] { callers.withLock { $0 } }
        var starter: PluginThreadStarter {
            { start in
                var name = [UInt8](repeating: 0, count: 32)
                let fd = open("/proc/thread-self/comm", O_RDONLY)
                if fd >= 0 { _ = read(fd, &name, 31); close(fd) }
                let text = String(decoding: name.prefix { $0 != 0 }, as: UTF8.self)
                let caller = text.split(separator: "\n").first.map(String.init) ?? ""
                self.callers.withLock { $0.append(caller) }
                return start()
            }
        }
    }

    /// Runs the probe guest with the plugin's output at `output` and `starter` as the
    /// host's thread starter; the guest and the host, to close (the host first).
    func runProbe(output: String, _ starter: Starter) throws -> (UARTGuest, PluginHost) {
        let guest = try UARTGuest("uart_probe")
        let plugins = PluginHost(vm: guest.vm, dispatcher: guest.dispatcher)
        plugins.threadStarter = starter.starter
        try plugins.load(Self.library, config: "port=0x3f8,output=file:\(output)")
        try guest.target(try UARTConfig.parse("port=0x3f8"))
        #expect(try guest.run() == .guestExit(code: 0))
        return (guest, plugins)
    }

    @Test("with the host's thread/1, a console that keeps up never gets the output thread; one that is full gets it from the vCPU, once")
    func outputThreadOnDemand() throws {
        // A file takes every line at once: no thread, the same bytes.
        let out = TempFile("lazy")
        let starter = Starter()
        let (guest, plugins) = try runProbe(output: out.path, starter)
        withExtendedLifetime(guest) { plugins.close() }
        #expect(text(out.bytes) == UARTGuestTests.probeReport)
        #expect(starter.calls.isEmpty)

        // A pipe already full: the first line goes to the writer, started for the vCPU.
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]); close(fds[1]) }
        #expect(fcntl(fds[1], 1031 /* F_SETPIPE_SZ */, Int32(4096)) == 4096)
        let full = [UInt8](repeating: UInt8(ascii: "x"), count: 4096)
        #expect(full.withUnsafeBytes { write(fds[1], $0.baseAddress!, $0.count) } == 4096)
        let busyStarter = Starter()
        let (busy, busyPlugins) = try runProbe(output: "/proc/self/fd/\(fds[1])", busyStarter)
        #expect(busyStarter.calls.count == 1)
        #expect(busyStarter.calls.first?.hasPrefix("vmm-vcpu") == true, "\(busyStarter.calls)")
        // Reading makes room; the writer delivers what the guest wrote, then ends at close.
        var got: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 8192)
        let want = 4096 + UARTGuestTests.probeReport.utf8.count
        while got.count < want {
            var p = pollfd(fd: fds[0], events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 10_000) == 1 else { break }
            let n = chunk.withUnsafeMutableBytes { read(fds[0], $0.baseAddress!, min($0.count, want - got.count)) }
            guard n > 0 else { break }
            got += chunk[0..<n]
        }
        withExtendedLifetime(busy) { busyPlugins.close() }
        #expect(got == full + Array(UARTGuestTests.probeReport.utf8))
        #expect(busyStarter.calls.count == 1)
    }

    @Test("a line from the input file reaches the polled echo guest once it raises RTS")
    func echoFromFile() throws {
        let input = TempFile("in"), out = TempFile("out")
        input.write("hello\r")
        let guest = try UARTGuest("uart_echo")
        let plugins = try load(guest, "port=0x3f8,input=file:\(input.path),output=file:\(out.path)")
        try guest.target(try UARTConfig.parse("port=0x3f8"))
        #expect(try guest.run() == .guestExit(code: 5))
        plugins.close()
        #expect(text(out.bytes) == "type a line: hello\nyou typed: hello\n")
    }

    @Test("coalesce=on goes through the host's coalesced_mmio/1: same bytes, one exit per 16 bytes")
    func coalesced() throws {
        let out = TempFile("bulk")
        let size = 64 << 10
        let guest = try UARTGuest("uart_bulk")
        let plugins = try load(guest, "mmio=0xd0003000,coalesce=on,output=file:\(out.path)")
        try guest.target(try UARTConfig.parse("mmio=0xd0003000"))
        try guest.editRegisters { $0.r15 = UInt64(size) }
        #expect(try guest.run() == .guestExit(code: 0))
        plugins.close()
        #expect(out.bytes == UARTGuestTests.bulkPattern(size))
        #expect(guest.vcpu.exitCount == UInt64(size / 16 + 1))
        #expect(guest.vm.coalescedRing.replayed == UInt64(size))
    }

    @Test("interrupt-driven receive through the plugin's set_irq_line (in-kernel irqchip)")
    func interrupts() throws {
        let input = TempFile("irq-in"), out = TempFile("irq-out")
        input.write("hi\n")
        let guest = try UARTGuest("uart_irq_echo", ring: 0, irqchip: true)
        try guest.dispatcher.registerPIO(port: 0x10, owner: "test") { _, _ in .handled }
        let plugins = try load(guest, "port=0x3f8,irq=4,input=file:\(input.path),output=file:\(out.path)")
        let reason = try guest.run()
        plugins.close()
        guard case let .guestExit(interrupts) = reason else { Issue.record("stopped: \(reason)"); return }
        #expect((1...3).contains(interrupts))
        #expect(text(out.bytes) == "hi\n")
        #expect(try guest.vm.memory.readBytes(0x20010, count: 1) == [0xc4])
    }

    @Test("refusals at plugin init name the key", arguments: [
        ("mmio=0xd0000000,shift=3", "uart: bad value '3' for key 'shift' (the MMIO register shift must be 0, 1 or 2)"),
        ("port=0x3f8,parity=even", "uart: unknown key 'parity' (known keys: port, mmio, shift, irq, output, input, coalesce, name, txbuffer)"),
        ("port=0x3f8,output=buffer", "uart: key 'output': 'buffer' is for in-process UARTs; a plugin uses stdout, stderr, stdin or file:PATH"),
    ])
    func refusals(config: String, message: String) throws {
        let guest = try UARTGuest("hlt")
        let plugins = PluginHost(vm: guest.vm, dispatcher: guest.dispatcher)
        defer { plugins.close() }
        var error: PluginError?
        do { try plugins.load(Self.library, config: config) } catch let e { error = e }
        #expect(error?.description == "plugin \(Self.id): init failed: \(message)")
    }

    @Test("a second UART overlapping the first is refused, naming the key and both owners")
    func overlap() throws {
        let guest = try UARTGuest("hlt")
        let plugins = PluginHost(vm: guest.vm, dispatcher: guest.dispatcher)
        defer { plugins.close() }
        try plugins.load(Self.library, config: "name=com1,port=0x3f8,output=none")
        var error: PluginError?
        do { try plugins.load(Self.library, config: "name=com9,port=0x3fc,output=none") } catch let e { error = e }
        let text = error?.description ?? ""
        #expect(text.hasPrefix("plugin \(Self.id): init failed: uart 'com9': key 'port' = 0x3fc: "))
        #expect(text.contains("'com1'") && text.contains("'com9'"), "\(text)")
    }
}
