import Glibc
import UART16550
import VMMKit

/// A `UART16550` placed on a VMMKit VM: its port or MMIO window routed through an
/// `ExitDispatcher`, its interrupt on the in-kernel irqchip (when the VM has one; the
/// UART is polled otherwise), its THR optionally coalesced, its output and input wired
/// as the configuration says. This is the in-process wiring; the dlopen'd plugin wraps
/// the same model through the plugin ABI.
public final class UARTDevice: @unchecked Sendable {
    public let config: UARTConfig
    public let uart: UART16550
    public let output: UARTOutputSink
    private var pump: InputPump?

    init(config: UARTConfig, vm: VirtualMachine) throws {
        self.config = config
        let sink = try UARTOutputSink(config.output, capacity: config.txBuffer)
        output = sink
        let irqLine = config.irq
        var irq: (@Sendable (Bool) -> Void)?
        if vm.hasIRQChip {
            irq = { [weak vm] level in _ = try? vm?.setIRQLine(irqLine, level: level) }
        }
        uart = UART16550(send: { sink.send($0) }, flush: { sink.flush() },
                         ready: { sink.isReady }, irq: irq)
        sink.onRoom { [weak uart] in uart?.transmitterRoom() }
    }

    deinit { close() }

    /// Parses each configuration string (plugin convention "key=value,...") and attaches
    /// the UARTs; see `attach(_:vm:dispatcher:)`.
    public static func attach(configs: [String], vm: VirtualMachine, dispatcher: ExitDispatcher) throws -> [UARTDevice] {
        var parsed: [UARTConfig] = []
        for text in configs { parsed.append(try UARTConfig.parse(text)) }
        return try attach(parsed, vm: vm, dispatcher: dispatcher)
    }

    /// Creates the UARTs and registers their windows before the vCPUs start. Refuses
    /// overlapping windows (naming the key) before anything is registered.
    public static func attach(_ configs: [UARTConfig], vm: VirtualMachine, dispatcher: ExitDispatcher) throws -> [UARTDevice] {
        try UARTConfig.checkOverlaps(configs)
        var devices: [UARTDevice] = []
        for config in configs {
            let device = try UARTDevice(config: config, vm: vm)
            try device.register(vm: vm, dispatcher: dispatcher)
            devices.append(device)
        }
        return devices
    }

    private func register(vm: VirtualMachine, dispatcher: ExitDispatcher) throws {
        let uart = self.uart
        let owner = "uart '\(config.name)'"
        switch config.placement {
        case let .pio(port):
            try dispatcher.registerPIO(port: port, count: 8, owner: owner) { io, _ in
                // A wider access touches consecutive registers, one byte each, as an
                // 8-bit device on a 16/32-bit bus does; `rep` repeats the same port.
                let first = Int(io.port &- port)
                for element in 0..<io.count {
                    let value = uart.portAccess(first: first, size: io.size, write: io.isWrite ? io.element(element) : nil)
                    if !io.isWrite { io.setElement(element, value) }
                }
                return .handled
            }
            if config.coalesce { try vm.registerCoalescedPIO(port: port, count: 1) }
        case let .mmio(address, shift):
            try dispatcher.registerMMIO(address: address, length: config.span, owner: owner) { access, _ in
                let value = uart.mmioAccess(offset: access.address - address, shift: shift,
                                            write: access.isWrite ? access.data : nil)
                if !access.isWrite { access.data = value }
                return .handled
            }
            if config.coalesce { try vm.registerCoalescedMMIO(address: address, length: 1 << UInt32(shift)) }
        }
        switch config.input {
        case .stdin: pump = try InputPump(fd: STDIN_FILENO, into: uart)
        case let .file(path): pump = try InputPump(path: path, into: uart)
        case .none, .buffer: break
        }
        try pump?.start()
    }

    /// Bytes from the host side, as if typed (for `input=buffer`, or on top of stdin).
    public func receive(_ bytes: some Sequence<UInt8>) { uart.receive(bytes) }

    /// What the guest sent so far (`output=buffer`).
    public var captured: [UInt8] { output.captured }

    /// Stops the input thread (restoring the terminal) and flushes the output. Idempotent.
    public func close() {
        pump?.stop()
        pump = nil
        output.close()
    }
}
