/// The mouse behind the i8042's auxiliary port (`I8042`, under its lock), as QEMU's PS/2
/// mouse (`ps2_write_mouse`): the commands a driver sends it through controller command
/// 0xd4 and their replies, so a driver written for QEMU finds and sets up a mouse
/// (reset, identify, IntelliMouse and Explorer detection by sample rates 200-100-80 and
/// 200-200-80, status, stream and remote modes, wrap mode), and the motion, wheel and
/// buttons the host gives it (`event`, `PUT /vm/mouse`) in QEMU's packets: streamed
/// while reporting is on in stream mode, a poll's in remote mode, at most ±127 a packet
/// (a larger motion is the next packets'). A value: it is also what a snapshot keeps of
/// the mouse (`ps2-mouse` in the device blob).
struct PS2Mouse: Equatable {
    /// Status request's first byte: remote mode, reporting enabled, 2:1 scaling.
    static let statusBits: UInt8 = 0x70
    static let remote: UInt8 = 0x40, enabled: UInt8 = 0x20, scale21: UInt8 = 0x10
    /// Commands whose data byte the next write is: resolution, sample rate.
    static let dataCommands: [UInt8] = [0xe8, 0xf3]
    /// Device ids: a standard mouse, IntelliMouse (a wheel), IntelliMouse Explorer.
    static let types: [UInt8] = [0, 3, 4]

    /// QEMU's after a reset of the machine: all zeros (SeaBIOS does not touch the mouse).
    var status: UInt8 = 0
    var resolution: UInt8 = 0
    var sampleRate: UInt8 = 0
    var wrap = false
    var type: UInt8 = 0
    /// How far the sample rates written so far go into a detection sequence (0-3).
    var detect: UInt8 = 0
    /// The command waiting for its data byte (0 for none).
    var awaiting: UInt8 = 0
    /// Motion and wheel not reported yet, in the mouse's directions (y up, wheel down
    /// positive), each within ±`maxDelta`; the buttons held (bit 0 left, 1 right, 2
    /// middle, 3 side, 4 extra); whether an event is owed a packet (a button change
    /// with no motion is one).
    var dx: Int32 = 0, dy: Int32 = 0, dz: Int32 = 0
    var buttons: UInt8 = 0
    var owed = false
    /// How much motion waits at most: more is dropped (a host cannot queue unbounded work).
    static let maxDelta: Int32 = 1 << 14
    static let buttonBits: UInt8 = 0x1f

    /// Whether `byte` is a reset (0xff as a command, in wrap mode too), which empties the
    /// mouse's queue before its replies (`I8042`).
    func resets(on byte: UInt8) -> Bool { awaiting == 0 && byte == 0xff }

    /// A byte the guest wrote to the mouse; returns the mouse's replies (none for a
    /// command it does not know, as QEMU's).
    mutating func receive(_ byte: UInt8) -> [UInt8] {
        if awaiting != 0 {
            let command = awaiting
            awaiting = 0
            if command == 0xe8 { resolution = byte } else { sample(byte) }
            return [0xfa]
        }
        if wrap {
            if byte == 0xec {
                wrap = false
                return [0xfa]
            }
            if byte != 0xff { return [byte] } // echoed
        }
        switch byte {
        case 0xe6: status &= ~Self.scale21
        case 0xe7: status |= Self.scale21
        case 0xe8, 0xf3: awaiting = byte
        case 0xe9: return [0xfa, status, resolution, sampleRate]
        case 0xea: status &= ~Self.remote
        case 0xeb: return [0xfa] + takePacket()
        case 0xee: wrap = true
        case 0xf0: status |= Self.remote
        case 0xf2: return [0xfa, type]
        case 0xf4: status |= Self.enabled
        case 0xf5: status &= ~Self.enabled
        case 0xf6: (sampleRate, resolution, status) = (100, 2, 0)
        case 0xff:
            // As QEMU's: wrap mode and the detection state stay as they were.
            (sampleRate, resolution, status, type) = (100, 2, 0, 0)
            return [0xfa, 0xaa, type] // self-test passed, then the id
        default: return []
        }
        return [0xfa]
    }

    /// A packet's bytes: 3, 4 for the IntelliMouse types.
    var packetSize: Int { type == 0 ? 3 : 4 }

    /// The host moved the mouse or changed its buttons (`buttons` nil: as they are);
    /// false, and nothing kept, while the guest has reporting off, as QEMU's drops them.
    mutating func event(dx: Int32, dy: Int32, wheel: Int32, buttons: UInt8?) -> Bool {
        guard status & Self.enabled != 0 else { return false }
        func add(_ a: Int32, _ b: Int32) -> Int32 { max(-Self.maxDelta, min(Self.maxDelta, a.clamped + b.clamped)) }
        (self.dx, self.dy, dz) = (add(self.dx, dx), add(self.dy, dy), add(dz, wheel))
        if let buttons { self.buttons = buttons & Self.buttonBits }
        owed = true
        return true
    }

    /// The next packet reporting owes the guest in stream mode, if any.
    mutating func streamPacket() -> [UInt8]? {
        guard status & Self.enabled != 0, status & Self.remote == 0, owed || dx != 0 || dy != 0 || dz != 0 else { return nil }
        return takePacket()
    }

    /// A packet of what has not been reported (at most ±127 of it, as QEMU's
    /// `ps2_mouse_send_packet`), taken from the deltas.
    mutating func takePacket() -> [UInt8] {
        let x = max(-127, min(127, dx)), y = max(-127, min(127, dy))
        var bytes: [UInt8] = [0x08 | (x < 0 ? 0x10 : 0) | (y < 0 ? 0x20 : 0) | buttons & 0x07,
                              UInt8(truncatingIfNeeded: x), UInt8(truncatingIfNeeded: y)]
        switch type {
        case 3:
            let z = max(-127, min(127, dz))
            bytes.append(UInt8(truncatingIfNeeded: z))
            dz -= z
        case 4:
            let z = max(-7, min(7, dz))
            bytes.append(UInt8(truncatingIfNeeded: z) & 0x0f | (buttons & 0x18) << 1)
            dz -= z
        default:
            dz = 0
        }
        dx -= x
        dy -= y
        owed = false
        return bytes
    }

    /// A sample rate, and the IntelliMouse detection it may complete.
    private mutating func sample(_ rate: UInt8) {
        sampleRate = rate
        switch (detect, rate) {
        case (0, 200): detect = 1
        case (1, 100): detect = 2
        case (1, 200): detect = 3
        case (2, 80): (type, detect) = (3, 0)
        case (3, 80): (type, detect) = (4, 0)
        case (0, _): break
        default: detect = 0
        }
    }

    /// Why `m` (from a snapshot) is not a state this mouse reaches, or nil.
    static func refusal(_ m: PS2Mouse) -> String? {
        guard m.status & ~statusBits == 0 else { return "ps2-mouse status \(hex(m.status)) (only bits 4-6 are kept)" }
        guard types.contains(m.type) else { return "ps2-mouse type \(m.type) (0, 3 or 4)" }
        guard m.detect <= 3 else { return "ps2-mouse detection state \(m.detect) (0 to 3)" }
        guard m.awaiting == 0 || dataCommands.contains(m.awaiting) else { return "ps2-mouse waiting command \(hex(m.awaiting)) (0, 0xe8 or 0xf3)" }
        for (d, what) in [(m.dx, "x"), (m.dy, "y"), (m.dz, "wheel")] where d.magnitude > maxDelta.magnitude {
            return "ps2-mouse \(what) motion \(d) (at most \(maxDelta) either way)"
        }
        guard m.buttons & ~buttonBits == 0 else { return "ps2-mouse buttons \(hex(m.buttons)) (bits 0-4)" }
        return nil
    }
}

private extension Int32 {
    /// Within ±`PS2Mouse.maxDelta`, so a sum of two never overflows.
    var clamped: Int32 { Swift.max(-PS2Mouse.maxDelta, Swift.min(PS2Mouse.maxDelta, self)) }
}
