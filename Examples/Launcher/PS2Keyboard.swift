/// The keyboard behind the i8042 (`I8042`, under its lock), as QEMU's PS/2 keyboard: the
/// commands a driver sends it and the keys `vmm ctl PATH sendkey` types. A value: it is
/// also what a snapshot keeps of the keyboard (`ps2-keyboard` in the device blob).
struct PS2Keyboard: Equatable {
    /// Typed bytes the guest has not read yet; keys that would not fit are refused whole.
    static let typedLimit = 256
    /// Commands whose data byte the next write is: LEDs, scan code set, typematic rate,
    /// make/break mode (QEMU's KBD_CMD_SET_MAKE_BREAK, whose byte it ACKs and ignores).
    static let dataCommands: [UInt8] = [0xed, 0xf0, 0xf3, 0xfc]

    /// The scan code set the keyboard sends, 1, 2 or 3, as QEMU's (asking for another is
    /// answered 0xfe, "resend").
    var set: UInt8 = 2
    /// Off after command 0xf5 until 0xf4, 0xf6 or 0xff: keys are then refused.
    var scanning = true
    /// The command waiting for its data byte (0 for none).
    var awaiting: UInt8 = 0
    /// Typed bytes not yet in the controller's output buffer, oldest first.
    var typed: [UInt8] = []

    /// Why keys were not typed, in one line each.
    enum Refusal: Error, Equatable {
        case badKeys(String)
        case notScanning
        case full(needed: Int, room: Int)

        var message: String {
            switch self {
            case let .badKeys(m): m
            case .notScanning: "the guest switched its keyboard's scanning off (command 0xf5): no key is typed until it is on again"
            case let .full(needed, room): "the keyboard holds \(room) more bytes the guest has not read; these keys need \(needed)"
            }
        }
    }

    /// A byte the guest wrote to the keyboard (port 0x60, no controller command waiting);
    /// returns the keyboard's replies. `translating`: the controller translates what the
    /// keyboard sends (configuration bit 6, set 2 into set 1), which changes what identify
    /// and "get scan code set" say, as QEMU's do: the set number goes through the
    /// translation (0x43, 0x41, 0x3f), the acknowledgement and identify's 0xab do not.
    mutating func receive(_ byte: UInt8, translating: Bool) -> [UInt8] {
        if awaiting != 0 {
            let command = awaiting
            awaiting = 0
            guard command == 0xf0 else { return [0xfa] } // LEDs, rate, make/break: taken, nothing to show
            switch byte {
            case 0: return [0xfa, translating ? PS2Keys.translation(set) : set]
            case 1, 2, 3:
                set = byte
                return [0xfa]
            default: return [0xfe]
            }
        }
        switch byte {
        case 0xed, 0xf0, 0xf3, 0xfc:
            awaiting = byte
            return [0xfa]
        case 0xee: return [0xee] // echo
        case 0x00, 0xfa: return [0xfa] // QEMU's ACK these (0xfa: "set all keys typematic/make/break")
        case 0xf2: return [0xfa, 0xab, translating ? 0x41 : 0x83] // identify: an MF2 keyboard
        case 0xf4:
            scanning = true
            return [0xfa]
        case 0xf5, 0xf6:
            reset()
            scanning = byte == 0xf6
            return [0xfa]
        case 0xff:
            reset()
            return [0xfa, 0xaa] // self-test passed
        default: return [0xfe] // "resend": a command QEMU's keyboard does not know (0x05 among them)
        }
    }

    /// Whether `byte` resets the keyboard (0xff, and 0xf5 and 0xf6, "reset and disable
    /// or enable scanning", as a command), which empties its queue before its replies
    /// (`I8042`): QEMU's `ps2_reset_keyboard` empties it for all three.
    func resets(on byte: UInt8) -> Bool { awaiting == 0 && (byte == 0xff || byte == 0xf5 || byte == 0xf6) }

    /// QEMU's keyboard reset: set 2, scanning, nothing typed waiting.
    private mutating func reset() {
        set = 2
        scanning = true
        typed.removeAll()
    }

    /// Types `combinations` (QEMU's `sendkey` syntax, `PS2Keys.parse`) in order, in the
    /// keyboard's set, through the controller's translation when `translating` (set 2 is
    /// then read as set 1, the default); all or nothing. (The control API bounds the
    /// request's size, and so how many bytes it can ask for.)
    mutating func type(_ combinations: [Substring], translating: Bool) throws(Refusal) {
        var bytes: [UInt8] = []
        for combination in combinations {
            do { bytes += PS2Keys.bytes(try PS2Keys.parse(combination), set: set) } catch {
                throw .badKeys(error.message)
            }
        }
        if translating { bytes = PS2Keys.translated(bytes) }
        guard scanning else { throw .notScanning }
        let room = Self.typedLimit - typed.count
        guard bytes.count <= room else { throw .full(needed: bytes.count, room: room) }
        typed += bytes
    }

    /// The next typed byte for the controller's output buffer, if any.
    mutating func nextTyped() -> UInt8? {
        typed.isEmpty ? nil : typed.removeFirst()
    }
}
