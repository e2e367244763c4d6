/// The mouse behind the i8042's auxiliary port (`I8042`, under its lock), as QEMU's PS/2
/// mouse (`ps2_write_mouse`): the commands a driver sends it through controller command
/// 0xd4 and their replies, so a driver written for QEMU finds and sets up a mouse
/// (reset, identify, IntelliMouse and Explorer detection by sample rates 200-100-80 and
/// 200-200-80, status, stream and remote modes, wrap mode). It never moves: no pointer
/// input reaches it from the host, so a poll (0xeb) reports no motion and no button. A
/// value: it is also what a snapshot keeps of the mouse (`ps2-mouse` in the device blob).
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
        case 0xeb: return [0xfa] + packet
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

    /// A motion packet with no motion: 3 bytes, 4 for IntelliMouse types.
    var packet: [UInt8] { type == 0 ? [0x08, 0, 0] : [0x08, 0, 0, 0] }

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
        return nil
    }
}
