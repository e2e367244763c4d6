import VMMKit

/// Keys by QEMU's names (QKeyCode, as its monitor's `sendkey` takes them: `a`, `ret`,
/// `shift`, `ctrl-alt-delete`) and their scan codes in sets 1 and 2, from the AT keyboard
/// tables QEMU's keycodemapdb holds. A combination `k1-k2-...` presses its keys in order
/// and releases them in reverse, as `sendkey` does. Pure: the i8042 turns a combination
/// into bytes for the scan code set the guest sees (`bytes(_:set1:)`).
enum PS2Keys {
    struct Key: Equatable {
        let set1: UInt8
        let set2: UInt8
        /// Sent after an 0xe0 prefix in both sets (the navigation block, right Ctrl/Alt, ...).
        let extended: Bool
    }

    /// Combinations in one request, and keys in one combination, are bounded.
    static let maxKeysPerCombination = 8
    static let maxNameBytes = 32

    /// Refused input: one line naming what was wrong.
    struct BadKeys: Error, Equatable {
        let message: String
    }

    /// The keys of one combination (`ctrl-alt-delete`), each a name of `byName` or a raw
    /// set-1 code `0xNN` (`0xe0NN`: extended), as QEMU's `sendkey` accepts.
    static func parse(_ combination: Substring) throws(BadKeys) -> [Key] {
        let names = combination.split(separator: "-", omittingEmptySubsequences: false)
        guard names.count <= maxKeysPerCombination else {
            throw BadKeys(message: "\(String(combination).quotedForMessage): more than \(maxKeysPerCombination) keys pressed together")
        }
        var keys: [Key] = []
        for name in names {
            guard !name.isEmpty else { throw BadKeys(message: "\(String(combination).quotedForMessage): an empty key name") }
            guard name.utf8.count <= maxNameBytes, let key = key(named: name) else {
                throw BadKeys(message: "unknown key \(String(name.prefix(maxNameBytes)).quotedForMessage) (QEMU's names: a-z, 0-9, ret, spc, esc, tab, backspace, shift, ctrl, alt, f1-f12, up, down, left, right, delete, ...)")
            }
            keys.append(key)
        }
        return keys
    }

    private static func key(named name: Substring) -> Key? {
        if let key = byName[String(name)] { return key }
        // Raw set-1 codes, as `sendkey 0x1e`: only those the table knows, so both sets agree.
        // Hex digits only: UInt16(_:radix:) alone also took "0x+1e".
        guard name.hasPrefix("0x"), name.count <= 6, let code = UInt16(plainNumber: name) else { return nil }
        let extended = code >> 8 == 0xe0
        guard code >> 8 == 0 || extended else { return nil }
        return byName.values.first { $0.set1 == UInt8(truncatingIfNeeded: code) && $0.extended == extended }
    }

    /// The bytes of `keys` pressed in order and released in reverse: set 1 (what the
    /// guest reads through the i8042's translation, or a keyboard switched to set 1), or
    /// set 2 (a break is 0xf0 before the make code).
    static func bytes(_ keys: [Key], set1: Bool) -> [UInt8] {
        var out: [UInt8] = []
        for key in keys {
            if key.extended { out.append(0xe0) }
            out.append(set1 ? key.set1 : key.set2)
        }
        for key in keys.reversed() {
            if key.extended { out.append(0xe0) }
            if set1 { out.append(key.set1 | 0x80) } else { out += [0xf0, key.set2] }
        }
        return out
    }

    /// The combinations that type `text` on a US keyboard (`vmm ctl PATH type`): letters,
    /// digits, space, punctuation with or without Shift, newline as Enter, tab as Tab.
    /// Anything else is refused, naming the character and where it is.
    static func combinations(typing text: String) throws(BadKeys) -> [String] {
        var out: [String] = []
        for (i, c) in text.unicodeScalars.enumerated() {
            guard c.isASCII, let combination = typed[UInt8(c.value)] else {
                throw BadKeys(message: "character \(i + 1) of the text, U+\(String(c.value, radix: 16, uppercase: true)), is not on a US keyboard (letters, digits, punctuation, space, tab, newline)")
            }
            out.append(combination)
        }
        return out
    }

    /// ASCII to combinations, from the US layout's rows.
    private static let typed: [UInt8: String] = {
        var map: [UInt8: String] = [0x0a: "ret", 0x09: "tab", 0x20: "spc"]
        for c in UInt8(ascii: "a")...UInt8(ascii: "z") {
            map[c] = String(UnicodeScalar(c))
            map[c - 0x20] = "shift-" + String(UnicodeScalar(c))
        }
        let pairs: [(String, String, String)] = [
            ("1", "!", "1"), ("2", "@", "2"), ("3", "#", "3"), ("4", "$", "4"), ("5", "%", "5"), ("6", "^", "6"), ("7", "&", "7"),
            ("8", "*", "8"), ("9", "(", "9"), ("0", ")", "0"), ("-", "_", "minus"), ("=", "+", "equal"), ("[", "{", "bracket_left"),
            ("]", "}", "bracket_right"), (";", ":", "semicolon"), ("'", "\"", "apostrophe"), ("`", "~", "grave_accent"),
            ("\\", "|", "backslash"), (",", "<", "comma"), (".", ">", "dot"), ("/", "?", "slash"),
        ]
        for (plain, shifted, key) in pairs {
            map[plain.utf8.first!] = key
            map[shifted.utf8.first!] = "shift-" + key
        }
        return map
    }()

    private static func k(_ set1: UInt8, _ set2: UInt8, extended: Bool = false) -> Key {
        Key(set1: set1, set2: set2, extended: extended)
    }

    /// QEMU's QKeyCode names; Pause and Print Screen (sequences of their own) are left out.
    static let byName: [String: Key] = [
        "esc": k(0x01, 0x76), "1": k(0x02, 0x16), "2": k(0x03, 0x1e), "3": k(0x04, 0x26), "4": k(0x05, 0x25),
        "5": k(0x06, 0x2e), "6": k(0x07, 0x36), "7": k(0x08, 0x3d), "8": k(0x09, 0x3e), "9": k(0x0a, 0x46),
        "0": k(0x0b, 0x45), "minus": k(0x0c, 0x4e), "equal": k(0x0d, 0x55), "backspace": k(0x0e, 0x66),
        "tab": k(0x0f, 0x0d), "q": k(0x10, 0x15), "w": k(0x11, 0x1d), "e": k(0x12, 0x24), "r": k(0x13, 0x2d),
        "t": k(0x14, 0x2c), "y": k(0x15, 0x35), "u": k(0x16, 0x3c), "i": k(0x17, 0x43), "o": k(0x18, 0x44),
        "p": k(0x19, 0x4d), "bracket_left": k(0x1a, 0x54), "bracket_right": k(0x1b, 0x5b), "ret": k(0x1c, 0x5a),
        "ctrl": k(0x1d, 0x14), "a": k(0x1e, 0x1c), "s": k(0x1f, 0x1b), "d": k(0x20, 0x23), "f": k(0x21, 0x2b),
        "g": k(0x22, 0x34), "h": k(0x23, 0x33), "j": k(0x24, 0x3b), "k": k(0x25, 0x42), "l": k(0x26, 0x4b),
        "semicolon": k(0x27, 0x4c), "apostrophe": k(0x28, 0x52), "grave_accent": k(0x29, 0x0e), "shift": k(0x2a, 0x12),
        "backslash": k(0x2b, 0x5d), "z": k(0x2c, 0x1a), "x": k(0x2d, 0x22), "c": k(0x2e, 0x21), "v": k(0x2f, 0x2a),
        "b": k(0x30, 0x32), "n": k(0x31, 0x31), "m": k(0x32, 0x3a), "comma": k(0x33, 0x41), "dot": k(0x34, 0x49),
        "slash": k(0x35, 0x4a), "shift_r": k(0x36, 0x59), "kp_multiply": k(0x37, 0x7c), "alt": k(0x38, 0x11),
        "spc": k(0x39, 0x29), "caps_lock": k(0x3a, 0x58), "f1": k(0x3b, 0x05), "f2": k(0x3c, 0x06), "f3": k(0x3d, 0x04),
        "f4": k(0x3e, 0x0c), "f5": k(0x3f, 0x03), "f6": k(0x40, 0x0b), "f7": k(0x41, 0x83), "f8": k(0x42, 0x0a),
        "f9": k(0x43, 0x01), "f10": k(0x44, 0x09), "num_lock": k(0x45, 0x77), "scroll_lock": k(0x46, 0x7e),
        "kp_7": k(0x47, 0x6c), "kp_8": k(0x48, 0x75), "kp_9": k(0x49, 0x7d), "kp_subtract": k(0x4a, 0x7b),
        "kp_4": k(0x4b, 0x6b), "kp_5": k(0x4c, 0x73), "kp_6": k(0x4d, 0x74), "kp_add": k(0x4e, 0x79),
        "kp_1": k(0x4f, 0x69), "kp_2": k(0x50, 0x72), "kp_3": k(0x51, 0x7a), "kp_0": k(0x52, 0x70),
        "kp_decimal": k(0x53, 0x71), "less": k(0x56, 0x61), "f11": k(0x57, 0x78), "f12": k(0x58, 0x07),
        // The extended keys: the keypad's codes (or Enter's, Ctrl's, Alt's, Slash's) after 0xe0.
        "kp_enter": k(0x1c, 0x5a, extended: true), "ctrl_r": k(0x1d, 0x14, extended: true),
        "kp_divide": k(0x35, 0x4a, extended: true), "alt_r": k(0x38, 0x11, extended: true),
        "home": k(0x47, 0x6c, extended: true), "up": k(0x48, 0x75, extended: true), "pgup": k(0x49, 0x7d, extended: true),
        "left": k(0x4b, 0x6b, extended: true), "right": k(0x4d, 0x74, extended: true), "end": k(0x4f, 0x69, extended: true),
        "down": k(0x50, 0x72, extended: true), "pgdn": k(0x51, 0x7a, extended: true), "insert": k(0x52, 0x70, extended: true),
        "delete": k(0x53, 0x71, extended: true), "meta_l": k(0x5b, 0x1f, extended: true),
        "meta_r": k(0x5c, 0x27, extended: true), "menu": k(0x5d, 0x2f, extended: true),
    ]
}
