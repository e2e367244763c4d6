import Synchronization
import VMMKit
import VMMLoader

/// ACPI's PM1a event and control blocks where QEMU's `pc` and `q35` firmware put them
/// (the PM base 0x600), as the FADT the loader writes names them (`PCFirmware`):
///
///   0x600 PM1a_STS  status, write 1 to clear; PWRBTN_STS (bit 8) is set by the power
///                   button (`pressPowerButton`, the control API's "PowerButton" action,
///                   as QEMU's `system_powerdown`); nothing else here raises an event
///   0x602 PM1a_EN   enables, read/write; PWRBTN_EN (bit 8) lets the button raise the SCI
///   0x604 PM1a_CNT  SCI_EN (bit 0), SLP_TYP (bits 10-12), SLP_EN (bit 13, never kept)
///
/// The SCI is IRQ 9, level-triggered (the MADT's override): high while a status bit and
/// its enable are both set and SCI_EN is on, so a guest that clears the status lowers it.
///
/// SLP_EN with sleep type 0 (the S5 the DSDT names) switches the machine off: it stops
/// (`StopReason.powerOff`) and the run ends with status 0, quietly, as QEMU exits.
/// `outw(0x604, 0x2000)` is how countless guests and test harnesses written for QEMU end.
/// Other sleep types (S3, S4) are not modelled: the bits are kept and the guest goes on,
/// as if woken at once. As the FADT has no SMI command port (the machine is in ACPI mode
/// from the start), SCI_EN reads 1 from reset with the in-kernel irqchip, where QEMU's
/// firmware sets it when the guest asks through port 0xb2. Each register is 16 bits and
/// byte accesses reach either half, as QEMU's do; bytes past 0x605 read all-ones and
/// ignore writes. Registered where no plugin claims the control register, the event block
/// also where none claims it (`register(on:)`); in snapshots
/// (`BuiltInDeviceState`).
final class ACPIPowerManagement: Sendable {
    static let base = PCFirmware.pm1aEventPort
    static let controlPort = PCFirmware.pm1aControlPort
    static let sleepEnable: UInt16 = 1 << 13
    static let sciEnable: UInt16 = 1
    static let powerButton: UInt16 = 1 << 8
    static let sciIRQ = UInt32(PCFirmware.sciIRQ)

    struct Registers: Equatable {
        var status: UInt16 = 0
        var enable: UInt16 = 0
        /// Without SLP_EN.
        var control: UInt16 = 0
    }

    private struct State {
        var registers: Registers
        /// The level last driven on the SCI line.
        var sci = false
    }

    private let state: Mutex<State>
    /// Drives IRQ 9; nil without an irqchip (no SCI).
    private let sciLine: (@Sendable (Bool) -> Void)?

    /// `acpiMode`: the guest has ACPI tables that name no SMI command port.
    init(acpiMode: Bool, sciLine: (@Sendable (Bool) -> Void)?) {
        state = Mutex(State(registers: Registers(control: acpiMode ? Self.sciEnable : 0)))
        self.sciLine = sciLine
    }

    var registers: Registers { state.withLock { $0.registers } }

    /// Puts saved registers back and drives the SCI to match them.
    func restore(_ r: Registers) {
        state.withLock {
            $0.registers = r
            $0.registers.control &= ~Self.sleepEnable
            updateSCI(&$0)
        }
    }

    /// The fixed-feature power button: PWRBTN_STS set, and the SCI raised if the guest
    /// enabled it. A guest that did not (no ACPI, or not yet) sees the status when it
    /// looks, as on QEMU.
    func pressPowerButton() {
        state.withLock {
            $0.registers.status |= Self.powerButton
            updateSCI(&$0)
        }
    }

    private func updateSCI(_ s: inout State) {
        let r = s.registers
        let level = r.control & Self.sciEnable != 0 && r.status & r.enable != 0
        guard level != s.sci, let sciLine else { return }
        s.sci = level
        sciLine(level)
    }

    /// The control register (0x604-0x605), and the event block (0x600-0x603) where no
    /// plugin holds any of its ports: a plugin there (the demo's ScratchDevice) leaves the
    /// machine its soft-off, as before the event block was modelled.
    func register(on dispatcher: ExitDispatcher) throws(VMMError) {
        if dispatcher.pioOwner(port: Self.base, count: 4) == nil {
            try register(on: dispatcher, port: Self.base, count: 4, offset: 0, owner: "ACPI PM1a status and enable (built-in)")
        }
        try register(on: dispatcher, port: Self.controlPort, count: 2, offset: 4, owner: "ACPI PM1a control (built-in)")
    }

    /// `offset`: where `port`'s register lies in `read` and `write`'s view (0 status, 2
    /// enable, 4 control), whatever ports the FADT names.
    private func register(on dispatcher: ExitDispatcher, port: UInt16, count: UInt16, offset first: Int, owner: String) throws(VMMError) {
        try dispatcher.registerPIO(port: port, count: count, owner: owner) { [self] io, vcpu in
            let offset = first + Int(io.port &- port)
            for i in 0..<io.count {
                guard io.isWrite else {
                    io.setElement(i, read(offset: offset, size: io.size))
                    continue
                }
                if let value = write(io.element(i), offset: offset, size: io.size) {
                    return vcpu.stopMachine(.powerOff("vCPU \(vcpu.id) wrote \(hex(value)) to port \(hex(Self.controlPort))"))
                }
            }
            return .handled
        }
    }

    /// An access of `size` bytes at `offset` in the blocks seen as one: status, enable,
    /// control (the fuzz target calls these directly).
    func read(offset: Int, size: Int) -> UInt32 {
        let r = registers
        let words = SIMD4(r.status, r.enable, r.control, 0)
        var value: UInt32 = 0
        for k in 0..<size {
            let o = offset + k
            let byte = o < 6 ? UInt32(words[o / 2] >> UInt16(o % 2 * 8)) & 0xff : 0xff
            value |= byte << UInt32(k * 8)
        }
        return value
    }

    /// Applies a write; the control value written when it switches the machine off.
    func write(_ value: UInt32, offset: Int, size: Int) -> UInt16? {
        // The bytes written into each register, and which of its bytes they are.
        var bits = SIMD4<UInt16>(), mask = SIMD4<UInt16>()
        for k in 0..<size where offset + k < 6 {
            let o = offset + k, shift = UInt16(o % 2 * 8)
            bits[o / 2] |= (UInt16(truncatingIfNeeded: value >> UInt32(k * 8)) & 0xff) << shift
            mask[o / 2] |= 0xff << shift
        }
        return state.withLock { s in
            s.registers.status &= ~bits[0]
            s.registers.enable = s.registers.enable & ~mask[1] | bits[1]
            let control = s.registers.control & ~mask[2] | bits[2]
            s.registers.control = control & ~Self.sleepEnable
            updateSCI(&s)
            guard mask[2] != 0, control & Self.sleepEnable != 0, (control >> 10) & 7 == 0 else { return nil }
            return control
        }
    }
}
