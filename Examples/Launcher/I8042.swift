import Glibc
import VMMKit

/// The PS/2 controller (i8042) of QEMU's `pc` machine, ports 0x60 (data) and 0x64 (status
/// and commands), with its keyboard, as SeaBIOS leaves them when it starts a guest:
/// configuration 0x61 (keyboard interrupt, mouse disabled, translation to scan code set
/// 1), the self-test passed, the keyboard in set 2 and scanning. Guests written for QEMU
/// read set-1 codes on IRQ 1 without setting anything up, and do here. The controller
/// answers the reset line (command 0xfe, any pulse of output-port bit 0, or the output
/// port written with bit 0 clear), which stops the machine as `ResetControl` does; the
/// configuration byte, the output port, the self-test and interface tests, each reply
/// left in the output buffer the guest polls (status bit 0). The keyboard answers
/// QEMU's commands (identify, echo, LEDs, rate, scan code set 1, 2 or 3, enable, disable,
/// reset; 0xfe to one it does not know) and types what `sendKeys` is given (`vmm ctl PATH sendkey`, QEMU's `sendkey`),
/// one byte in the output buffer at a time, the rest waiting in the keyboard
/// (`typedLimit`) while the guest reads or has the keyboard disabled. Its mouse
/// (`PS2Mouse`) answers the commands written through 0xd4 and reports what `moveMouse`
/// gives it (`PUT /vm/mouse`), a packet in the output queue whenever one fits. A20 stays
/// enabled whatever the output port says. Firecracker's i8042 serves the same
/// purpose (its SendCtrlAltDel too).
///
/// Interrupts, as QEMU's (with an in-kernel irqchip, `connectInterrupts`): while a reply
/// waits, IRQ 1 is high for a keyboard or controller byte when configuration bit 0 allows
/// it and bit 4 has not disabled the keyboard, IRQ 12 for a mouse byte (commands 0xd3,
/// 0xd4; status bit 5) when bit 1 allows it. Reading port 0x60 lowers the line and
/// raises it again for the next byte, so each byte is an edge the PIC or IOAPIC sees.
///
/// Without it both ports were unassigned: the status read 0xff ("input buffer full",
/// for ever), so a guest waiting to send 0xfe spun there until `--max-seconds`, or
/// forever. Registered after the plugins, where no plugin claims either port; saved in
/// snapshots with the launcher's other devices (`BuiltInDeviceState`).
final class I8042: @unchecked Sendable {
    static let dataPort: UInt16 = 0x60, commandPort: UInt16 = 0x64
    /// Replies the guest has not read; more are dropped, as QEMU's PS/2 queue drops them.
    static let queueLimit = 16
    /// Bytes the mouse's packets leave free for replies to commands, as QEMU's
    /// `ps2_mouse_sync` stops 4 short of its queue: a driver's command to either device,
    /// sent while the mouse moves, is answered (its replies were dropped behind a full
    /// queue of packets, and the driver waited for the ACK for ever). Either device's
    /// bytes leave as much for the other's (`reply`).
    static let replyRoom = 4

    private let lock = Lock(())
    // Guarded by lock:
    // SeaBIOS's: its self-test set the system flag; its last write was data (0xf4, to the keyboard).
    private var status: UInt8 = 0x14 // "system flag" | "not inhibited"
    private var config: UInt8 = 0x61 // keyboard interrupt, mouse disabled, translation
    private var outputPort: UInt8 = 0xcf // reset line high, A20 on, the rest ones
    /// The command whose data byte the next write to port 0x60 is (0 for none).
    private var awaiting: UInt8 = 0
    private var replies: [UInt8] = []
    /// Which of `replies` are the mouse's (bit 0: the first).
    private var auxReplies: UInt16 = 0
    private var lastRead: UInt8 = 0
    private var keyboard = PS2Keyboard()
    private var mouse = PS2Mouse()
    /// The interrupt lines as last driven, and where to drive them (nil: no irqchip).
    private var keyboardLine = false, mouseLine = false
    private var irq: (@Sendable (UInt32, Bool) -> Void)?

    init() { replies.reserveCapacity(Self.queueLimit) }

    private func locked<T>(_ body: () -> T) -> T { lock.withLock { _ in body() } }

    /// Drives IRQs 1 and 12 through `setLine` (line, level); before any vCPU runs.
    func connectInterrupts(_ setLine: @escaping @Sendable (UInt32, Bool) -> Void) {
        locked {
            irq = setLine
            driveLines(afterRead: false)
        }
    }

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
        locked {
            if port == Self.commandPort { return status | (replies.isEmpty ? 0 : 0x01) | (auxReplies & 1 != 0 ? 0x20 : 0) }
            // An empty buffer reads its last byte again, as QEMU's does.
            if !replies.isEmpty {
                lastRead = replies.removeFirst()
                auxReplies >>= 1
            }
            feedMouse()
            feedTyped()
            driveLines(afterRead: true)
            return lastRead
        }
    }

    /// True when the write asks for a reset.
    func write(_ port: UInt16, _ byte: UInt8) -> Bool {
        locked {
            defer {
                feedMouse() // reporting switched on with motion owed
                feedTyped() // the keyboard enabled again, or the buffer emptied
                driveLines(afterRead: false) // a reply queued, or the configuration changed
            }
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
            case 0xd2: reply(byte) // "write keyboard output buffer": echoed back
            case 0xd3: reply(byte, mouse: true) // "write aux output buffer"
            case 0xd4: // a byte for the mouse
                if mouse.resets(on: byte) { dropQueued(mouse: true) }
                for r in mouse.receive(byte) { reply(r, mouse: true) }
                // Writing to a device enables its port, as QEMU's kbd_write_data: a driver that
                // sends 0xd4,0xf4 without 0xa8 gets its packets (here they waited for ever).
                config &= ~0x20
            default:
                if keyboard.resets(on: byte) { dropQueued(mouse: false) }
                keyboard(byte)
                config &= ~0x10
            }
            return false
        }
    }

    /// A device's reset empties its queue, as QEMU's `ps2_reset_queue`: its bytes behind
    /// the one in the output buffer go (QEMU's controller holds one byte, the rest wait in
    /// each device), so the reset's own replies always fit, after a full queue of the
    /// mouse's packets too (they were dropped, and a driver waited for the ACK for ever).
    private func dropQueued(mouse: Bool) {
        guard replies.count > 1 else { return }
        var kept = [replies[0]], aux = auxReplies & 1
        for i in 1..<replies.count where ((auxReplies >> i) & 1 != 0) != mouse {
            if (auxReplies >> i) & 1 != 0 { aux |= 1 << kept.count }
            kept.append(replies[i])
        }
        (replies, auxReplies) = (kept, aux)
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

    /// A byte for the keyboard (port 0x60 with no command waiting).
    private func keyboard(_ byte: UInt8) {
        for r in keyboard.receive(byte, translating: config & 0x40 != 0) { reply(r) }
    }

    /// Types `combinations` (QEMU's `sendkey` names, `PS2Keys`) on the keyboard, in the
    /// scan code set the guest reads now; all or nothing. Any thread.
    func sendKeys(_ combinations: [Substring]) throws(PS2Keyboard.Refusal) {
        try lock.withLock { _ throws(PS2Keyboard.Refusal) in
            try keyboard.type(combinations, translating: config & 0x40 != 0)
            feedTyped()
            driveLines(afterRead: false)
        }
    }

    /// Moves the mouse by (`dx`, `dy`) in its directions (y up) and `wheel`, with
    /// `buttons` held (nil: as they are); false when the guest has its reporting off (the
    /// event is dropped, as QEMU drops it). Any thread.
    func moveMouse(dx: Int32, dy: Int32, wheel: Int32, buttons: UInt8?) -> Bool {
        locked {
            guard mouse.event(dx: dx, dy: dy, wheel: wheel, buttons: buttons) else { return false }
            feedMouse()
            driveLines(afterRead: false)
            return true
        }
    }

    /// Under the lock: the mouse's owed packets into the output queue while each fits
    /// whole short of `replyRoom` (the rest wait in the mouse until the guest reads), unless
    /// the configuration disabled the auxiliary port (bit 5: command 0xa7), as QEMU holds
    /// the mouse's bytes then.
    private func feedMouse() {
        guard config & 0x20 == 0 else { return }
        while Self.queueLimit - Self.replyRoom - replies.count >= mouse.packetSize, let packet = mouse.streamPacket() {
            for byte in packet { reply(byte, mouse: true) }
        }
    }

    /// Under the lock: the next typed byte into the empty output buffer, unless the
    /// configuration disabled the keyboard (bit 4), as a keyboard holds its bytes while
    /// the controller inhibits it.
    private func feedTyped() {
        guard replies.isEmpty, config & 0x10 == 0, let byte = keyboard.nextTyped() else { return }
        replies.append(byte)
    }

    /// For a snapshot (vCPUs paused).
    var state: BuiltInDeviceState.I8042Registers {
        locked {
            return .init(status: status, config: config, outputPort: outputPort, awaiting: awaiting, lastRead: lastRead, replies: replies,
                         auxReplies: auxReplies, keyboard: keyboard, mouse: mouse)
        }
    }

    /// A restore's, checked by `BuiltInDeviceState.decode` (before any vCPU runs).
    func restore(_ s: BuiltInDeviceState.I8042Registers) {
        locked {
            (status, config, outputPort, awaiting, lastRead) = (s.status, s.config, s.outputPort, s.awaiting, s.lastRead)
            replies = Array(s.replies.prefix(Self.queueLimit))
            auxReplies = s.auxReplies & UInt16(truncatingIfNeeded: (1 << replies.count) - 1)
            keyboard = s.keyboard
            keyboard.typed = Array(keyboard.typed.prefix(PS2Keyboard.typedLimit))
            mouse = s.mouse
            feedMouse()
            feedTyped()
            // The lines as they were, taken without driving them: the irqchip's saved state
            // already holds an interrupt not yet delivered, and KVM's I/O APIC keeps no line
            // levels across KVM_SET_IRQCHIP, so raising a line again after its interrupt was
            // delivered (the guest's handler had not yet read port 0x60) was a second edge: the
            // restored guest took the interrupt twice and read the byte again.
            (keyboardLine, mouseLine) = levels
        }
    }

    /// Queues a device's (or, `mouse` false, the keyboard side's and the controller's)
    /// byte. One device's bytes fill at most `queueLimit - replyRoom`: QEMU gives each
    /// device a queue of its own, so a queue full of one device's bytes never kept the
    /// other's reset from answering (with one shared queue, 15 unread keyboard ACKs left a
    /// mouse reset's FA AA 00 no room, and a driver waiting for them waited for ever). The
    /// room left always holds the other's reset replies beside the output buffer's byte.
    private func reply(_ byte: UInt8, mouse: Bool = false) {
        let own = (0..<replies.count).filter { ((auxReplies >> $0) & 1 != 0) == mouse }.count
        guard replies.count < Self.queueLimit, own < Self.queueLimit - Self.replyRoom else { return }
        if mouse { auxReplies |= 1 << replies.count }
        replies.append(byte)
    }

    /// Under the lock: each line to its level (QEMU's kbd_update_irq_lines). After a data
    /// read both go low first, so the next waiting byte raises its line again.
    private func driveLines(afterRead: Bool) {
        guard let irq else { return }
        if afterRead {
            if keyboardLine { irq(1, false); keyboardLine = false }
            if mouseLine { irq(12, false); mouseLine = false }
        }
        let (keyboard, mouse) = levels
        if keyboard != keyboardLine { irq(1, keyboard); keyboardLine = keyboard }
        if mouse != mouseLine { irq(12, mouse); mouseLine = mouse }
    }

    /// Under the lock: the levels IRQs 1 and 12 should have: the output buffer's byte is
    /// the keyboard's (its interrupt on, its port enabled) or the mouse's (its interrupt on).
    private var levels: (keyboard: Bool, mouse: Bool) {
        let mouseByte = auxReplies & 1 != 0
        return (!replies.isEmpty && !mouseByte && config & 0x01 != 0 && config & 0x10 == 0,
                !replies.isEmpty && mouseByte && config & 0x02 != 0)
    }
}
