import Glibc
import VMMKit

/// A minimal output-only COM1 used when the UART plugin is not loaded: THR writes go
/// to the serial target; LSR always reads "transmitter empty"; DLAB is honoured so a
/// divisor write does not print.
final class BasicConsole: @unchecked Sendable {
    let base: UInt16
    private let fd: Int32
    private let ownsFD: Bool
    private var lcr: UInt8 = 0

    init(_ target: SerialTarget, base: UInt16 = 0x3f8) throws(LauncherError) {
        self.base = base
        switch target {
        case .stdio: fd = 1; ownsFD = false
        case .none: fd = -1; ownsFD = false
        case let .file(path):
            let f = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard f >= 0 else {
                throw LauncherError(.usage, "--serial file:\(path): cannot open: \(String(cString: strerror(errno)))")
            }
            fd = f; ownsFD = true
        }
    }

    deinit { if ownsFD { close(fd) } }

    func register(on dispatcher: ExitDispatcher) throws(VMMError) {
        try dispatcher.registerPIO(port: base, count: 8, owner: "console (COM1)") { [self] io, _ in
            let register = io.port - base
            if io.isWrite {
                switch register {
                case 0 where lcr & 0x80 == 0:
                    if fd >= 0 {
                        for i in 0..<io.count { var b = UInt8(truncatingIfNeeded: io.element(i)); _ = write(fd, &b, 1) }
                    }
                case 3: lcr = UInt8(truncatingIfNeeded: io.value)
                default: break
                }
            } else {
                io.value = switch register {
                case 2: 0x01 // IIR: no interrupt pending
                case 3: UInt32(lcr)
                case 5: 0x60 // LSR: THRE | TEMT
                default: 0
                }
            }
            return .handled
        }
    }
}
