import Synchronization
import VMMKit

/// QEMU's floppy disk controller as its `pc` machine has it without `-fda`: ports 0x3f1-
/// 0x3f5 and 0x3f7 (QEMU leaves 0x3f0 unassigned; 0x3f6 is the IDE primary channel's),
/// IRQ 6, drive A there with no diskette, drive B absent (`FloppyState`). The CMOS
/// (0x10 = 0x50) and the BIOS data area name drive A; before, nothing answered at its
/// ports, which read all-ones: a driver waited for ever for a ready controller, or, with
/// `--strict-io`, stopped the guest.
///
/// A guest resets it, reads its version, specifies, recalibrates and seeks (IRQ 6 and
/// SENSE INTERRUPT STATUS), and finds no diskette: a read ends at once with abnormal
/// termination, as under QEMU. Byte registers, a wider access split byte by byte
/// (`BytePorts`) under the controller's lock; IRQ 6 raised and lowered in the access
/// that changes it. Its state is kept in snapshots (`floppy` in `BuiltInDeviceState`).
final class FloppyController: BytePortDevice {
    static let ports: [UInt16] = [0x3f1, 0x3f2, 0x3f3, 0x3f4, 0x3f5, 0x3f7]
    static let irqLine: UInt32 = 6

    private struct Locked {
        var s = FloppyState()
        var line = InterruptLine()
    }

    private let state = Mutex(Locked())

    /// Drives IRQ 6 through `setLine`; before any vCPU runs.
    func connectInterrupt(_ setLine: @escaping @Sendable (Bool) -> Void) { state.withLock { $0.line.connect(setLine) } }

    func register(on dispatcher: ExitDispatcher) throws(VMMError) {
        try BytePorts.register(Self.ports, on: dispatcher, owner: "floppy controller, drive A empty (built-in)", device: self)
    }

    /// For a snapshot (vCPUs paused).
    var saved: FloppyState { state.withLock { $0.s } }

    /// A restore's (checked by `FloppyState.decode`), before any vCPU runs. The line's
    /// level comes back in the state, not driven: the irqchip's state holds it.
    func restore(_ s: FloppyState) { state.withLock { $0.s = s } }

    /// Runs `body` on the state under the lock (`BytePortDevice`), then moves IRQ 6 as the
    /// access moved it (low, then high again, for a reset with an interrupt pending).
    func withRegisters(_ body: (inout FloppyState) -> Void) {
        state.withLock { l in
            let was = l.s.interruptPending
            body(&l.s)
            l.line.follow(from: was, to: l.s.interruptPending, dropped: l.s.lineDropped)
            l.s.lineDropped = false
        }
    }

    static func read(_ port: UInt16, _ s: inout FloppyState) -> UInt8 {
        ports.contains(port) ? s.read(register: port & 7) : 0xff
    }

    static func write(_ port: UInt16, _ value: UInt8, _ s: inout FloppyState) {
        if ports.contains(port) { s.write(register: port & 7, value) }
    }
}
