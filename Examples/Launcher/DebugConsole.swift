import VMMKit

/// QEMU's `-debugcon` (`isa-debugcon`, Bochs's "port 0xe9 hack"): every byte the guest
/// writes to port 0xe9 goes to the target, with no UART to program, so firmware and
/// hobby kernels print through it before they have a console (SeaBIOS's debug output,
/// `outb %al, $0xe9`). A read returns 0xe9, QEMU's readback, which is how guests tell the
/// port is there (unassigned I/O reads 0xff). The port is one byte wide: a wider access
/// writes its low byte and reads 0xe9 zero-extended, each element of a string
/// instruction (`rep outsb`) in turn. No state: nothing to snapshot.
///
/// Off unless `--debugcon` names a target: without it port 0xe9 is unassigned, as under
/// QEMU without `-debugcon`.
final class DebugConsole: @unchecked Sendable {
    static let port: UInt16 = 0xe9
    static let readback: UInt32 = 0xe9
    private let output: OutputSink

    init(_ target: SerialTarget) throws(LauncherError) {
        output = try OutputSink(target, device: "debug console (port 0xe9)", flag: "--debugcon",
                                fifoNote: "the debug console does not wait for a reader")
    }

    func register(on dispatcher: ExitDispatcher) throws(VMMError) {
        try dispatcher.registerPIO(port: Self.port, owner: "debug console (built-in)") { [output] io, _ in
            if io.isWrite {
                output.emit(count: io.count) { io.element($0) }
            } else {
                for i in 0..<io.count { io.setElement(i, Self.readback) }
            }
            return .handled
        }
    }
}
