import CVMMPlugin
import Glibc
import UART16550
import VMMPluginKit

/// The 16550A as a dlopen'd plugin: one instance per UART, configured like the
/// in-process `UARTDevice` ("port=0x3f8,output=stdout,input=stdin", see UARTConfig).
/// IRQs go through the host's set_irq_line (polled when the VM has no irqchip), and
/// `coalesce=on` asks the host's coalesced_mmio/1 extension to queue THR writes.
/// Output and input are the process's (stdout, files, stdin); `buffer` is for
/// in-process UARTs only, since a plugin's buffer would be out of the host's reach.
final class UARTPlugin: VMMPlugin, PluginStateful {
    static let id = "org.vmmkit.uart16550"
    let config: UARTConfig
    let uart: UART16550
    let output: UARTOutputSink
    private var pump: InputPump?
    /// Valid until destroy() returns: `shutdown` reports a console that stopped through it.
    private let host: PluginServices

    init(host: PluginServices, config settings: PluginConfig) throws {
        let config = try UARTConfig.parse(settings.text)
        self.config = config
        self.host = host
        if config.output == .buffer || config.input == .buffer {
            let key = config.output == .buffer ? "output" : "input"
            throw UARTConfigError("uart: key '\(key)': 'buffer' is for in-process UARTs; a plugin uses stdout, stderr, stdin or file:PATH", key: key)
        }
        // With the host's thread/1 the console writer starts only if the console falls
        // behind, asked for from the vCPU; without it, here.
        let starter: UARTOutputSink.ThreadStarter? = host.threads.map { threads in
            { entry, argument in threads.start(entry, argument).mapError { UARTOutputSink.StartError(errno: $0.rawValue) } }
        }
        let sink = try UARTOutputSink(config.output, capacity: config.txBuffer, starter: starter)
        output = sink
        // The host table is [any-thread] for set_irq_line and lives until destroy().
        nonisolated(unsafe) let raw = host.raw
        let line = config.irq
        // Probe the line once: -ENOTSUP means no in-kernel irqchip, so the UART is polled.
        var irq: (@Sendable (Bool) -> Void)?
        if raw.pointee.set_irq_line(raw.pointee.host_data, line, 0) == 0 {
            irq = { level in _ = raw.pointee.set_irq_line(raw.pointee.host_data, line, level ? 1 : 0) }
        }
        let uart = UART16550(send: { sink.send($0) }, flush: { sink.flush() },
                             ready: { sink.isReady }, irq: irq)
        self.uart = uart
        sink.onRoom { [weak uart] in uart?.transmitterRoom() }
        do {
            try register(host, uart)
            if config.coalesce { try coalesce(host) }
            switch config.input {
            case .stdin: pump = try InputPump(fd: STDIN_FILENO, into: uart)
            case let .file(path): pump = try InputPump(path: path, into: uart)
            case .none, .buffer: break
            }
            try pump?.start()
        } catch {
            // The sink's writer thread holds it: end it, or init's failure leaks a thread.
            sink.close()
            throw error
        }
    }

    // ABI 1.2 state: the registers and queued input (UART16550+State.swift).
    var stateVersion: UInt32 { UART16550.stateVersion }
    func saveState() throws -> [UInt8] { uart.savedState() }
    func restoreState(_ bytes: [UInt8], version: UInt32) throws { try uart.restoreState(bytes) }

    func shutdown() {
        pump?.stop()
        pump = nil
        output.close()
        // A full disk, a closed pipe, a console that fell behind: the guest is never
        // told, so the user is, once.
        for line in output.lossReport(name: config.name) { host.log(.error, line) }
    }

    private var placementKey: String { if case .pio = config.placement { "port" } else { "mmio" } }

    /// The register window; a clash with another device names our key and theirs.
    private func register(_ host: PluginServices, _ uart: UART16550) throws {
        do {
            switch config.placement {
            case let .pio(port):
                try host.registerPIO(port: port, count: 8, name: config.name) { io in
                    let first = Int(io.port &- port)
                    for element in 0..<io.count {
                        let value = uart.portAccess(first: first, size: io.size, write: io.isWrite ? io.element(element) : nil)
                        if !io.isWrite { io.setElement(element, value) }
                    }
                    return .handled
                }
            case let .mmio(address, shift):
                try host.registerMMIO(address: address, length: config.span, name: config.name) { access in
                    let value = uart.mmioAccess(offset: access.address - address, shift: shift,
                                                write: access.isWrite ? access.data : nil)
                    if !access.isWrite { access.data = value }
                    return .handled
                }
            }
        } catch {
            throw UARTConfigError("uart '\(config.name)': key '\(placementKey)' = \(hexString(config.base)): \(error)", key: placementKey)
        }
    }

    /// THR (register 0) queued by the kernel through the host's coalesced_mmio/1.
    private func coalesce(_ host: PluginServices) throws {
        guard let table = host.hostExtension(VMM_EXT_HOST_COALESCED_MMIO)?
            .assumingMemoryBound(to: vmm_host_coalesced_mmio_t.self) else {
            throw UARTConfigError("uart: key 'coalesce': the host or the kernel offers no coalesced MMIO", key: "coalesce")
        }
        var error: UnsafePointer<CChar>?
        let (space, length): (UInt32, UInt64) = switch config.placement {
        case .pio: (VMM_SPACE_PIO, 1)
        case let .mmio(_, shift): (VMM_SPACE_MMIO, 1 << UInt64(shift))
        }
        let rc = table.pointee.add(host.raw.pointee.host_data, space, config.base, length, &error)
        guard rc == 0 else {
            let why = error.map { String(cString: $0) } ?? "errno \(-rc)"
            throw UARTConfigError("uart: key 'coalesce': \(why)", key: "coalesce")
        }
    }
}

func hexString(_ value: UInt64) -> String { "0x" + String(value, radix: 16) }
