import Glibc
import VMMKit

/// A minimal output-only COM1 used when the UART plugin is not loaded: THR writes go
/// to the serial target; LSR always reads "transmitter empty"; DLAB is honoured so a
/// divisor write does not print.
final class BasicConsole: @unchecked Sendable {
    static let com1: UInt16 = 0x3f8
    let base: UInt16
    private let output: OutputSink
    /// The line control register (DLAB and the line format); locked: vCPUs may print at once.
    private let lcr = Lock<UInt8>(0)

    init(_ target: SerialTarget, base: UInt16 = BasicConsole.com1) throws(LauncherError) {
        self.base = base
        output = try OutputSink(target, device: "console (COM1)", flag: "--serial",
                                fifoNote: "this stand-in console does not wait for a reader; the UART plugin does")
    }

    func register(on dispatcher: ExitDispatcher) throws(VMMError) {
        try dispatcher.registerPIO(port: base, count: 8, owner: "console (COM1)") { [self] io, _ in
            let register = io.port - base
            lcr.withLock { lcr in
                if io.isWrite {
                    switch register {
                    case 0 where lcr & 0x80 == 0: output.emit(count: io.count) { io.element($0) }
                    case 3: lcr = UInt8(truncatingIfNeeded: io.value)
                    default: break
                    }
                } else {
                    let value: UInt32 = switch register {
                    case 2: 0x01 // IIR: no interrupt pending
                    case 3: UInt32(lcr)
                    case 5: 0x60 // LSR: THRE | TEMT
                    default: 0
                    }
                    for i in 0..<io.count { io.setElement(i, value) } // each element of `rep insb`
                }
            }
            return .handled
        }
    }

    /// The LCR (DLAB and the line format), for a snapshot; a restore puts it back.
    var lcrState: UInt8 {
        get { lcr.withLock { $0 } }
        set { lcr.withLock { $0 = newValue } }
    }
}
