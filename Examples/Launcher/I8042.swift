import Glibc
import VMMKit

/// The PS/2 controller (i8042) of QEMU's `pc` machine, ports 0x60 (data) and 0x64 (status
/// and commands), as far as a guest uses it with no keyboard attached: the reset line
/// (command 0xfe, any pulse of output-port bit 0, or the output port written with bit 0
/// clear), which stops the machine as `ResetControl` does; the configuration byte, the
/// output port, the self-test and interface tests, each reply left in the output buffer
/// the guest polls (status bit 0). Bytes for the keyboard are acknowledged (0xfa) but no
/// key ever arrives and IRQ 1 is never raised; A20 stays enabled whatever the output
/// port says. Firecracker's i8042 serves the same purpose. After reset, as QEMU's:
/// status 0x18, configuration 0x03, output port 0xcf.
///
/// Without it both ports were unassigned: the status read 0xff ("input buffer full",
/// for ever), so a guest waiting to send 0xfe spun there until `--max-seconds`, or
/// forever. Registered after the plugins, where no plugin claims either port; saved in
/// snapshots with the launcher's other devices (`BuiltInDeviceState`).
final class I8042: @unchecked Sendable {
    static let dataPort: UInt16 = 0x60, commandPort: UInt16 = 0x64
    /// Replies the guest has not read; more are dropped, as QEMU's PS/2 queue drops them.
    static let queueLimit = 16

    private var lock = pthread_mutex_t()
    // Guarded by lock:
    private var status: UInt8 = 0x18 // "command last" | "not inhibited"
    private var config: UInt8 = 0x03 // keyboard and aux interrupts enabled
    private var outputPort: UInt8 = 0xcf // reset line high, A20 on, the rest ones
    /// The command whose data byte the next write to port 0x60 is (0 for none).
    private var awaiting: UInt8 = 0
    private var replies: [UInt8] = []
    private var lastRead: UInt8 = 0

    init() {
        pthread_mutex_init(&lock, nil)
        replies.reserveCapacity(Self.queueLimit)
    }

    deinit { pthread_mutex_destroy(&lock) }

    func register(on dispatcher: ExitDispatcher) throws(VMMError) {
        for port in [Self.dataPort, Self.commandPort] {
            try dispatcher.registerPIO(port: port, owner: "i8042 (built-in)") { [self] io, vcpu in
                for i in 0..<io.count {
                    guard io.isWrite else {
                        // The bytes above the register (a wider access) read all-ones.
                        io.setElement(i, 0xffff_ff00 | UInt32(read(port)))
                        continue
                    }
                    let byte = UInt8(truncatingIfNeeded: io.element(i))
                    if write(port, byte) {
                        return vcpu.stopMachine(.reset("vCPU \(vcpu.id) wrote \(hex(byte)) to port \(hex(port))"))
                    }
                }
                return .handled
            }
        }
    }

    func read(_ port: UInt16) -> UInt8 {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        if port == Self.commandPort { return status | (replies.isEmpty ? 0 : 0x01) }
        // An empty buffer reads its last byte again, as QEMU's does.
        if !replies.isEmpty { lastRead = replies.removeFirst() }
        return lastRead
    }

    /// True when the write asks for a reset.
    func write(_ port: UInt16, _ byte: UInt8) -> Bool {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        if port == Self.commandPort {
            status |= 0x08
            return command(byte)
        }
        status &= ~0x08
        let command = awaiting
        awaiting = 0
        switch command {
        case 0x60: config = byte
        case 0xd1:
            outputPort = byte
            return byte & 0x01 == 0 // the reset line held low
        case 0xd2, 0xd3: reply(byte) // "write keyboard / aux output buffer": echoed back
        case 0xd4: reply(0xfa) // a byte for the mouse, which is not there: acknowledged
        default: keyboard(byte)
        }
        return false
    }

    /// A controller command (port 0x64); true when it pulses the reset line.
    private func command(_ byte: UInt8) -> Bool {
        // A new command cancels one still waiting for its data byte, as on an 8042.
        awaiting = 0
        switch byte {
        case 0x20: reply(config)
        case 0x60, 0xd1, 0xd2, 0xd3, 0xd4: awaiting = byte
        case 0xa7: config |= 0x20
        case 0xa8: config &= ~0x20
        case 0xa9, 0xab: reply(0x00) // interface tests pass
        case 0xaa:
            status |= 0x04 // system flag: self-test passed
            reply(0x55)
        case 0xad: config |= 0x10
        case 0xae: config &= ~0x10
        case 0xc0: reply(0x80) // input port
        case 0xd0: reply(outputPort)
        case 0xdd: outputPort &= ~0x02
        case 0xdf: outputPort |= 0x02
        case 0xf0...0xff: return byte & 0x01 == 0 // pulse output bits 3-0 (low = pulsed); bit 0 is reset
        default: break
        }
        return false
    }

    /// A byte for the keyboard (port 0x60 with no command waiting): acknowledged, with
    /// the replies a driver probing for a keyboard waits for.
    private func keyboard(_ byte: UInt8) {
        switch byte {
        case 0xee: reply(0xee) // echo
        case 0xf2: reply(0xfa); reply(0xab); reply(0x83) // identify: an MF2 keyboard
        case 0xff: reply(0xfa); reply(0xaa) // reset: self-test passed
        default: reply(0xfa)
        }
    }

    /// For a snapshot (vCPUs paused).
    var state: BuiltInDeviceState.I8042Registers {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        return .init(status: status, config: config, outputPort: outputPort, awaiting: awaiting, lastRead: lastRead, replies: replies)
    }

    /// A restore's, checked by `BuiltInDeviceState.decode` (before any vCPU runs).
    func restore(_ s: BuiltInDeviceState.I8042Registers) {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        (status, config, outputPort, awaiting, lastRead) = (s.status, s.config, s.outputPort, s.awaiting, s.lastRead)
        replies = Array(s.replies.prefix(Self.queueLimit))
    }

    private func reply(_ byte: UInt8) {
        if replies.count < Self.queueLimit { replies.append(byte) }
    }
}
