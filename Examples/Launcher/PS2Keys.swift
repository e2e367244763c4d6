import VMMKit

/// Keys by QEMU's names (QKeyCode, as its monitor's `sendkey` takes them: `a`, `ret`,
/// `shift`, `ctrl-alt-delete`) and their scan codes in sets 1, 2 and 3, from the AT keyboard
/// tables QEMU's keycodemapdb holds (its `qcode_to_atset1/2/3`). A combination `k1-k2-...`
/// presses its keys in order and releases them in reverse, as `sendkey` does. Pure: the
/// keyboard turns a combination into bytes in its scan code set (`bytes(_:set:)`), and the
/// i8042 translates those when its configuration says so (`translated(_:)`).
enum PS2Keys {
    struct Key: Equatable {
        /// The key's code in each set; 0 where QEMU's table has none, and QEMU then sends
        /// nothing for it in that set (only `menu` in set 2).
        let set1: UInt8
        let set2: UInt8
        let set3: UInt8
        /// Sent after an 0xe0 prefix in sets 1 and 2 (the navigation block, right Ctrl/Alt,
        /// ...); set 3 has no prefixes, each key a code of its own.
        let extended: Bool
        /// Its bit in QEMU's modifier state (`ps2_modifier_bit`): Ctrl, Shift and Alt, each
        /// side apart; 0 for any other key.
        var modifier: UInt8 = 0
        /// Pause and Print Screen: in sets 1 and 2 sequences of their own (`special`),
        /// which depend on the modifiers held; in set 3 codes as any key's. Lang1 and
        /// Lang2 (Hangeul, Hanja) send no break in sets 1 and 2.
        var special: Special = .none
    }

    enum Special { case none, pause, print, pressOnly }

    /// QEMU's modifier bits.
    static let ctrlL: UInt8 = 1, shiftL: UInt8 = 2, altL: UInt8 = 4, ctrlR: UInt8 = 8, shiftR: UInt8 = 16, altR: UInt8 = 32

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
        // Raw set-1 codes, as `sendkey 0x1e`: only those the table knows, so every set agrees.
        // Hex digits only: UInt16(_:radix:) alone also took "0x+1e".
        guard name.hasPrefix("0x"), name.count <= 6, let code = UInt16(plainNumber: name) else { return nil }
        let extended = code >> 8 == 0xe0
        guard code >> 8 == 0 || extended else { return nil }
        // Plain keys only: Pause and Print Screen hold 0 as their set-1 code, and Lang1
        // and Lang2 (codes past 0x80, with no break) are typed by name.
        return byName.values.first {
            $0.special == .none && $0.set1 == UInt8(truncatingIfNeeded: code) && $0.extended == extended
        }
    }

    /// The bytes the keyboard sends for `keys` pressed in order and released in reverse,
    /// in scan code `set` (1, 2 or 3), as QEMU's `ps2_keyboard_event`: set 1 breaks set bit
    /// 7, sets 2 and 3 send 0xf0 before the make code (set 3 for every key, QEMU's keyboard
    /// taking no per-key make/break modes). A key without a code in the set is skipped.
    /// The modifiers start released: every earlier combination released its keys.
    static func bytes(_ keys: [Key], set: UInt8) -> [UInt8] {
        var out: [UInt8] = [], held: UInt8 = 0
        for key in keys {
            held |= key.modifier
            out += event(key, down: true, set: set, held: held)
        }
        for key in keys.reversed() {
            held &= ~key.modifier
            out += event(key, down: false, set: set, held: held)
        }
        return out
    }

    private static func event(_ key: Key, down: Bool, set: UInt8, held: UInt8) -> [UInt8] {
        if set != 3 {
            switch key.special {
            case .pause, .print: return special(key.special, down: down, set: set, held: held)
            case .pressOnly where !down: return []
            default: break
            }
        }
        let code = set == 1 ? key.set1 : set == 2 ? key.set2 : key.set3
        guard code != 0 else { return [] }
        var out: [UInt8] = set != 3 && key.extended ? [0xe0] : []
        if set == 1 { out.append(down ? code : code | 0x80) } else { out += down ? [code] : [0xf0, code] }
        return out
    }

    /// Pause and Print Screen in sets 1 and 2, as QEMU's `ps2_keyboard_event` sends them:
    /// Pause only when pressed (Ctrl-Pause is Break), Print Screen as SysRq under Alt and
    /// without its fake Shift under Shift or Ctrl. QEMU writes out both sets' sequences;
    /// set 1's are exactly set 2's through the 8042's translation, so only set 2's are
    /// held here (`PS2ScanCodeSetTests` checks set 1's bytes against QEMU's).
    private static func special(_ key: Special, down: Bool, set: UInt8, held: UInt8) -> [UInt8] {
        let two = specialSet2(key, down: down, held: held)
        return set == 1 ? translated(two) : two
    }

    private static func specialSet2(_ key: Special, down: Bool, held: UInt8) -> [UInt8] {
        if key == .pause {
            guard down else { return [] }
            if held & (ctrlL | ctrlR) != 0 { return [0xe0, 0x7e, 0xe0, 0xf0, 0x7e] }
            return [0xe1, 0x14, 0x77, 0xe1, 0xf0, 0x14, 0xf0, 0x77]
        }
        if held & altL != 0 { return down ? [0xf0, 0x11, 0x11, 0x84] : [0xf0, 0x84, 0xf0, 0x11, 0x11] }
        if held & altR != 0 {
            return down ? [0xe0, 0xf0, 0x11, 0xe0, 0x11, 0x84] : [0xf0, 0x84, 0xe0, 0xf0, 0x11, 0xe0, 0x11]
        }
        if held & (shiftL | ctrlL | shiftR | ctrlR) != 0 { return down ? [0xe0, 0x7c] : [0xe0, 0xf0, 0x7c] }
        return down ? [0xe0, 0x12, 0xe0, 0x7c] : [0xe0, 0xf0, 0x7c, 0xe0, 0xf0, 0x12]
    }

    /// What the guest reads of the keyboard's `bytes` with the i8042 translating
    /// (configuration bit 6), as QEMU's `ps2_put_keycode` translates whatever set the
    /// keyboard is in: each byte through the 8042's table, and 0xf0 dropped, setting bit 7
    /// of the byte after it. Set 2 comes out as set 1; sets 1 and 3 come out as QEMU's do.
    static func translated(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [], breaking = false
        for byte in bytes {
            if byte == 0xf0 { breaking = true; continue }
            out.append(translation(byte) | (breaking ? 0x80 : 0))
            breaking = false
        }
        return out
    }

    /// The 8042's translation of one byte (QEMU's `translate_table`): codes below 0x80
    /// by the table, 0x83 (set 2's F7) as 0x41 and 0x84 as 0x54, the rest unchanged.
    static func translation(_ byte: UInt8) -> UInt8 {
        switch byte {
        case 0..<0x80: translationTable[Int(byte)]
        case 0x83: 0x41
        case 0x84: 0x54
        default: byte
        }
    }

    private static let translationTable: [UInt8] = [
        0xff, 0x43, 0x41, 0x3f, 0x3d, 0x3b, 0x3c, 0x58, 0x64, 0x44, 0x42, 0x40, 0x3e, 0x0f, 0x29, 0x59,
        0x65, 0x38, 0x2a, 0x70, 0x1d, 0x10, 0x02, 0x5a, 0x66, 0x71, 0x2c, 0x1f, 0x1e, 0x11, 0x03, 0x5b,
        0x67, 0x2e, 0x2d, 0x20, 0x12, 0x05, 0x04, 0x5c, 0x68, 0x39, 0x2f, 0x21, 0x14, 0x13, 0x06, 0x5d,
        0x69, 0x31, 0x30, 0x23, 0x22, 0x15, 0x07, 0x5e, 0x6a, 0x72, 0x32, 0x24, 0x16, 0x08, 0x09, 0x5f,
        0x6b, 0x33, 0x25, 0x17, 0x18, 0x0b, 0x0a, 0x60, 0x6c, 0x34, 0x35, 0x26, 0x27, 0x19, 0x0c, 0x61,
        0x6d, 0x73, 0x28, 0x74, 0x1a, 0x0d, 0x62, 0x6e, 0x3a, 0x36, 0x1c, 0x1b, 0x75, 0x2b, 0x63, 0x76,
        0x55, 0x56, 0x77, 0x78, 0x79, 0x7a, 0x0e, 0x7b, 0x7c, 0x4f, 0x7d, 0x4b, 0x47, 0x7e, 0x7f, 0x6f,
        0x52, 0x53, 0x50, 0x4c, 0x4d, 0x48, 0x01, 0x45, 0x57, 0x4e, 0x51, 0x4a, 0x37, 0x49, 0x46, 0x54,
    ]

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

    private static func k(_ set1: UInt8, _ set2: UInt8, _ set3: UInt8, extended: Bool = false, modifier: UInt8 = 0) -> Key {
        Key(set1: set1, set2: set2, set3: set3, extended: extended, modifier: modifier)
    }

    /// QEMU's QKeyCode names, every one, with keycodemapdb's codes (its data/keymaps.csv),
    /// which give `kp_subtract` and `kp_divide` the set-3 codes of `minus` and `slash`
    /// (0x4e, 0x4a), `asterisk` the codes of `kp_multiply`, and many keys no code in set 2
    /// or 3: QEMU sends those, and so does this.
    static let byName: [String: Key] = [
        "esc": k(0x01, 0x76, 0x08), "1": k(0x02, 0x16, 0x16), "2": k(0x03, 0x1e, 0x1e), "3": k(0x04, 0x26, 0x26), "4": k(0x05, 0x25, 0x25),
        "5": k(0x06, 0x2e, 0x2e), "6": k(0x07, 0x36, 0x36), "7": k(0x08, 0x3d, 0x3d), "8": k(0x09, 0x3e, 0x3e), "9": k(0x0a, 0x46, 0x46),
        "0": k(0x0b, 0x45, 0x45), "minus": k(0x0c, 0x4e, 0x4e), "equal": k(0x0d, 0x55, 0x55), "backspace": k(0x0e, 0x66, 0x66),
        "tab": k(0x0f, 0x0d, 0x0d), "q": k(0x10, 0x15, 0x15), "w": k(0x11, 0x1d, 0x1d), "e": k(0x12, 0x24, 0x24), "r": k(0x13, 0x2d, 0x2d),
        "t": k(0x14, 0x2c, 0x2c), "y": k(0x15, 0x35, 0x35), "u": k(0x16, 0x3c, 0x3c), "i": k(0x17, 0x43, 0x43), "o": k(0x18, 0x44, 0x44),
        "p": k(0x19, 0x4d, 0x4d), "bracket_left": k(0x1a, 0x54, 0x54), "bracket_right": k(0x1b, 0x5b, 0x5b), "ret": k(0x1c, 0x5a, 0x5a),
        "ctrl": k(0x1d, 0x14, 0x11, modifier: ctrlL), "a": k(0x1e, 0x1c, 0x1c), "s": k(0x1f, 0x1b, 0x1b), "d": k(0x20, 0x23, 0x23), "f": k(0x21, 0x2b, 0x2b),
        "g": k(0x22, 0x34, 0x34), "h": k(0x23, 0x33, 0x33), "j": k(0x24, 0x3b, 0x3b), "k": k(0x25, 0x42, 0x42), "l": k(0x26, 0x4b, 0x4b),
        "semicolon": k(0x27, 0x4c, 0x4c), "apostrophe": k(0x28, 0x52, 0x52), "grave_accent": k(0x29, 0x0e, 0x0e), "shift": k(0x2a, 0x12, 0x12, modifier: shiftL),
        "backslash": k(0x2b, 0x5d, 0x5c), "z": k(0x2c, 0x1a, 0x1a), "x": k(0x2d, 0x22, 0x22), "c": k(0x2e, 0x21, 0x21), "v": k(0x2f, 0x2a, 0x2a),
        "b": k(0x30, 0x32, 0x32), "n": k(0x31, 0x31, 0x31), "m": k(0x32, 0x3a, 0x3a), "comma": k(0x33, 0x41, 0x41), "dot": k(0x34, 0x49, 0x49),
        "slash": k(0x35, 0x4a, 0x4a), "shift_r": k(0x36, 0x59, 0x59, modifier: shiftR), "kp_multiply": k(0x37, 0x7c, 0x7e), "alt": k(0x38, 0x11, 0x19, modifier: altL),
        "spc": k(0x39, 0x29, 0x29), "caps_lock": k(0x3a, 0x58, 0x14), "f1": k(0x3b, 0x05, 0x07), "f2": k(0x3c, 0x06, 0x0f), "f3": k(0x3d, 0x04, 0x17),
        "f4": k(0x3e, 0x0c, 0x1f), "f5": k(0x3f, 0x03, 0x27), "f6": k(0x40, 0x0b, 0x2f), "f7": k(0x41, 0x83, 0x37), "f8": k(0x42, 0x0a, 0x3f),
        "f9": k(0x43, 0x01, 0x47), "f10": k(0x44, 0x09, 0x4f), "num_lock": k(0x45, 0x77, 0x76), "scroll_lock": k(0x46, 0x7e, 0x5f),
        "kp_7": k(0x47, 0x6c, 0x6c), "kp_8": k(0x48, 0x75, 0x75), "kp_9": k(0x49, 0x7d, 0x7d), "kp_subtract": k(0x4a, 0x7b, 0x4e),
        "kp_4": k(0x4b, 0x6b, 0x6b), "kp_5": k(0x4c, 0x73, 0x73), "kp_6": k(0x4d, 0x74, 0x74), "kp_add": k(0x4e, 0x79, 0x7c),
        "kp_1": k(0x4f, 0x69, 0x69), "kp_2": k(0x50, 0x72, 0x72), "kp_3": k(0x51, 0x7a, 0x7a), "kp_0": k(0x52, 0x70, 0x70),
        "kp_decimal": k(0x53, 0x71, 0x71), "less": k(0x56, 0x61, 0x13), "f11": k(0x57, 0x78, 0x56), "f12": k(0x58, 0x07, 0x5e),
        // The extended keys: the keypad's codes (or Enter's, Ctrl's, Alt's, Slash's) after 0xe0.
        "kp_enter": k(0x1c, 0x5a, 0x79, extended: true), "ctrl_r": k(0x1d, 0x14, 0x58, extended: true, modifier: ctrlR),
        "kp_divide": k(0x35, 0x4a, 0x4a, extended: true), "alt_r": k(0x38, 0x11, 0x39, extended: true, modifier: altR),
        "home": k(0x47, 0x6c, 0x6e, extended: true), "up": k(0x48, 0x75, 0x63, extended: true), "pgup": k(0x49, 0x7d, 0x6f, extended: true),
        "left": k(0x4b, 0x6b, 0x61, extended: true), "right": k(0x4d, 0x74, 0x6a, extended: true), "end": k(0x4f, 0x69, 0x65, extended: true),
        "down": k(0x50, 0x72, 0x60, extended: true), "pgdn": k(0x51, 0x7a, 0x6d, extended: true), "insert": k(0x52, 0x70, 0x67, extended: true),
        "delete": k(0x53, 0x71, 0x64, extended: true), "meta_l": k(0x5b, 0x1f, 0x8b, extended: true),
        "meta_r": k(0x5c, 0x27, 0x8c, extended: true), "compose": k(0x5d, 0x2f, 0x8d, extended: true),
        // QEMU's `menu` is Linux's KEY_MENU, not the key beside the right Windows key
        // (that is `compose`): set 1 0xe0 0x1e, no set-2 code (so nothing through the
        // translation, QEMU's default), set 3 0x91.
        "menu": k(0x1e, 0x00, 0x91, extended: true),
        // Sequences of their own in sets 1 and 2 (`special`); set 3's codes are keycodemapdb's.
        "pause": Key(set1: 0, set2: 0, set3: 0x62, extended: false, special: .pause),
        "print": Key(set1: 0, set2: 0, set3: 0x57, extended: false, special: .print),
        "sysrq": k(0x54, 0x7f, 0x57), "asterisk": k(0x37, 0x7c, 0x7e),
        "f13": k(0x5d, 0x2f, 0x7f), "f14": k(0x5e, 0x37, 0x80), "f15": k(0x5f, 0x3f, 0x81), "f16": k(0x55, 0x00, 0x82),
        "f17": k(0x03, 0x00, 0x83, extended: true), "f18": k(0x77, 0x00, 0x00, extended: true), "f19": k(0x04, 0x00, 0x00, extended: true),
        "f20": k(0x5a, 0x00, 0x00), "f21": k(0x74, 0x00, 0x00), "f22": k(0x79, 0x00, 0x00, extended: true), "f23": k(0x6d, 0x00, 0x00),
        "f24": k(0x6f, 0x00, 0x00), "lf": k(0x5b, 0x00, 0x00), "open": k(0x64, 0x00, 0x20), "paste": k(0x65, 0x00, 0x28),
        // Japanese and Korean keyboards' keys.
        "henkan": k(0x79, 0x64, 0x86), "hiragana": k(0x77, 0x62, 0x87), "katakanahiragana": k(0x70, 0x13, 0x87),
        "muhenkan": k(0x7b, 0x67, 0x85), "ro": k(0x73, 0x51, 0x00), "yen": k(0x7d, 0x6a, 0x5d), "kp_comma": k(0x7e, 0x6d, 0x00),
        "kp_equals": k(0x59, 0x0f, 0x00),
        "lang1": Key(set1: 0xf2, set2: 0xf2, set3: 0, extended: false, special: .pressOnly),
        "lang2": Key(set1: 0xf1, set2: 0xf1, set3: 0, extended: false, special: .pressOnly),
        // Sun's and the multimedia keys, all after 0xe0 in sets 1 and 2.
        "stop": k(0x68, 0x28, 0x0a, extended: true), "again": k(0x05, 0x00, 0x0b, extended: true), "props": k(0x06, 0x00, 0x0c, extended: true),
        "undo": k(0x07, 0x00, 0x10, extended: true), "front": k(0x0c, 0x00, 0x00, extended: true), "copy": k(0x78, 0x00, 0x18, extended: true),
        "cut": k(0x3c, 0x00, 0x38, extended: true), "find": k(0x41, 0x00, 0x30, extended: true), "help": k(0x75, 0x00, 0x09, extended: true),
        "power": k(0x5e, 0x37, 0x00, extended: true), "sleep": k(0x5f, 0x3f, 0x00, extended: true), "wake": k(0x63, 0x5e, 0x00, extended: true),
        "audionext": k(0x19, 0x4d, 0x93, extended: true), "audioprev": k(0x10, 0x15, 0x94, extended: true),
        "audiostop": k(0x24, 0x3b, 0x98, extended: true), "audioplay": k(0x22, 0x34, 0x00, extended: true),
        "audiomute": k(0x20, 0x23, 0x9c, extended: true), "volumeup": k(0x30, 0x32, 0x95, extended: true),
        "volumedown": k(0x2e, 0x21, 0x9d, extended: true), "mediaselect": k(0x6d, 0x50, 0x00, extended: true),
        "mail": k(0x6c, 0x48, 0x00, extended: true), "calculator": k(0x21, 0x2b, 0xa3, extended: true),
        "computer": k(0x6b, 0x40, 0x00, extended: true), "ac_home": k(0x32, 0x3a, 0x97, extended: true),
        "ac_back": k(0x6a, 0x38, 0x00, extended: true), "ac_forward": k(0x69, 0x30, 0x00, extended: true),
        "ac_refresh": k(0x67, 0x20, 0x00, extended: true), "ac_bookmarks": k(0x66, 0x18, 0x00, extended: true),
    ]
}
