@testable import Launcher
import Testing

/// The keyboard's scan code sets as a guest reads them through the launcher's i8042, with
/// the controller's translation (configuration bit 6) on, as SeaBIOS leaves it, and off:
/// QEMU's bytes (hw/input/ps2.c, its key tables from keycodemapdb).
@Suite("the PS/2 keyboard's scan code sets 1, 2 and 3, with and without translation")
struct PS2ScanCodeSetTests {
    /// A controller whose configuration is `config` (0x61: translating; 0x21: not).
    static func controller(config: UInt8) -> I8042 {
        let kbd = I8042()
        _ = kbd.write(I8042.commandPort, 0x60)
        _ = kbd.write(I8042.dataPort, config)
        return kbd
    }

    /// Writes `bytes` to the keyboard and returns every byte the guest then reads.
    static func exchange(_ kbd: I8042, _ bytes: [UInt8]) -> [UInt8] {
        for byte in bytes { _ = kbd.write(I8042.dataPort, byte) }
        return drain(kbd)
    }

    static func drain(_ kbd: I8042) -> [UInt8] {
        var read: [UInt8] = []
        while kbd.read(I8042.commandPort) & 0x01 != 0 { read.append(kbd.read(I8042.dataPort)) }
        return read
    }

    @Test("F0 03 selects set 3 (ACK); F0 00 answers ACK and 3 without translation, 0x3f through it, as QEMU's; F0 04 is refused")
    func selectAndGet() {
        let raw = Self.controller(config: 0x21)
        #expect(Self.exchange(raw, [0xf0, 0x03]) == [0xfa, 0xfa])
        #expect(Self.exchange(raw, [0xf0, 0x00]) == [0xfa, 0xfa, 0x03])
        #expect(raw.state.keyboard.set == 3)
        let translating = Self.controller(config: 0x61)
        #expect(Self.exchange(translating, [0xf0, 0x03, 0xf0, 0x00]) == [0xfa, 0xfa, 0xfa, 0xfa, 0x3f])
        #expect(Self.exchange(translating, [0xf0, 0x04, 0xf0, 0x00]) == [0xfa, 0xfe, 0xfa, 0xfa, 0x3f])
        // Identify is the same in every set; a reset goes back to set 2.
        #expect(Self.exchange(translating, [0xf2]) == [0xfa, 0xab, 0x41])
        #expect(Self.exchange(translating, [0xff, 0xf0, 0x00]) == [0xfa, 0xaa, 0xfa, 0xfa, 0x41])
    }

    @Test("sendkey in set 3: one code a key, no 0xe0 prefixes (a cursor key, right Ctrl, Delete), 0xf0 before each break; through the translation each code goes through the 8042's table and a break sets bit 7")
    func set3Keys() throws {
        let raw = Self.controller(config: 0x21)
        #expect(Self.exchange(raw, [0xf0, 0x03]) == [0xfa, 0xfa])
        try raw.sendKeys(["shift-a", "up", "ctrl-alt-delete", "ctrl_r"])
        #expect(Self.drain(raw) == [0x12, 0x1c, 0xf0, 0x1c, 0xf0, 0x12, 0x63, 0xf0, 0x63,
                                    0x11, 0x19, 0x64, 0xf0, 0x64, 0xf0, 0x19, 0xf0, 0x11, 0x58, 0xf0, 0x58])
        let translating = Self.controller(config: 0x61)
        #expect(Self.exchange(translating, [0xf0, 0x03]) == [0xfa, 0xfa])
        try translating.sendKeys(["shift-a", "up", "ctrl-alt-delete", "ctrl_r"])
        #expect(Self.drain(translating) == [0x2a, 0x1e, 0x9e, 0xaa, 0x78, 0xf8, 0x38, 0x71, 0x79, 0xf9, 0xf1, 0xb8, 0x3a, 0xba])
        // keycodemapdb gives the keypad's minus and divide the codes of minus and slash.
        #expect(PS2Keys.bytes(try PS2Keys.parse("kp_subtract-kp_divide"), set: 3) == [0x4e, 0x4a, 0xf0, 0x4a, 0xf0, 0x4e])
    }

    @Test("the translation turns every key's set-2 bytes into its set-1 bytes; a keyboard in set 1 is translated again, as QEMU's")
    func translation() throws {
        for (name, key) in PS2Keys.byName where key.set2 != 0 {
            #expect(PS2Keys.translated(PS2Keys.bytes([key], set: 2)) == PS2Keys.bytes([key], set: 1), "\(name)")
        }
        let kbd = Self.controller(config: 0x61)
        #expect(Self.exchange(kbd, [0xf0, 0x01, 0xf0, 0x00]) == [0xfa, 0xfa, 0xfa, 0xfa, 0x43])
        try kbd.sendKeys(["a"])
        #expect(Self.drain(kbd) == [0x03, 0x9e]) // 0x1e through the table; 0x9e is left as it is
    }

    @Test("Pause and Print Screen as QEMU's keyboard sends them: Pause only pressed, Break under Ctrl; Print Screen with its fake Shift, without it under Shift or Ctrl, SysRq under Alt; set 3 a code each; set 2 reads as set 1 through the translation")
    func pauseAndPrint() throws {
        func bytes(_ combination: Substring, _ set: UInt8) throws -> [UInt8] { PS2Keys.bytes(try PS2Keys.parse(combination), set: set) }
        #expect(try bytes("pause", 1) == [0xe1, 0x1d, 0x45, 0xe1, 0x9d, 0xc5])
        #expect(try bytes("ctrl-pause", 1) == [0x1d, 0xe0, 0x46, 0xe0, 0xc6, 0x9d])
        #expect(try bytes("print", 1) == [0xe0, 0x2a, 0xe0, 0x37, 0xe0, 0xb7, 0xe0, 0xaa])
        #expect(try bytes("shift-print", 1) == [0x2a, 0xe0, 0x37, 0xe0, 0xb7, 0xaa])
        #expect(try bytes("alt-print", 1) == [0x38, 0xb8, 0x38, 0x54, 0xd4, 0xb8, 0x38, 0xb8])
        #expect(try bytes("alt_r-print", 1) == [0xe0, 0x38, 0xe0, 0xb8, 0xe0, 0x38, 0x54, 0xd4, 0xe0, 0xb8, 0xe0, 0x38, 0xe0, 0xb8])
        #expect(try bytes("pause", 2) == [0xe1, 0x14, 0x77, 0xe1, 0xf0, 0x14, 0xf0, 0x77])
        #expect(try bytes("ctrl_r-pause", 2) == [0xe0, 0x14, 0xe0, 0x7e, 0xe0, 0xf0, 0x7e, 0xe0, 0xf0, 0x14])
        #expect(try bytes("print", 2) == [0xe0, 0x12, 0xe0, 0x7c, 0xe0, 0xf0, 0x7c, 0xe0, 0xf0, 0x12])
        #expect(try bytes("alt-print", 2) == [0x11, 0xf0, 0x11, 0x11, 0x84, 0xf0, 0x84, 0xf0, 0x11, 0x11, 0xf0, 0x11])
        #expect(try bytes("pause-print", 3) == [0x62, 0x57, 0xf0, 0x57, 0xf0, 0x62])
        // Which modifier is held when the key goes down and when it goes up decides.
        #expect(try bytes("print-shift", 1) == [0xe0, 0x2a, 0xe0, 0x37, 0x2a, 0xaa, 0xe0, 0xb7, 0xe0, 0xaa])
        for mods in ["", "ctrl-", "ctrl_r-", "shift-", "shift_r-", "alt-", "alt_r-", "ctrl-alt-", "alt_r-shift-", "shift-alt-ctrl_r-"] {
            for key in ["pause", "print"] {
                let combination = Substring(mods + key)
                #expect(PS2Keys.translated(try bytes(combination, 2)) == (try bytes(combination, 1)), "\(combination)")
            }
        }
        // Through the i8042 as a guest reads them, translated (set 2) and raw (set 2 and 3).
        let translating = Self.controller(config: 0x61)
        try translating.sendKeys(["pause", "ctrl-pause"])
        #expect(Self.drain(translating) == [0xe1, 0x1d, 0x45, 0xe1, 0x9d, 0xc5, 0x1d, 0xe0, 0x46, 0xe0, 0xc6, 0x9d])
        let raw = Self.controller(config: 0x21)
        try raw.sendKeys(["print"])
        #expect(Self.drain(raw) == [0xe0, 0x12, 0xe0, 0x7c, 0xe0, 0xf0, 0x7c, 0xe0, 0xf0, 0x12])
        #expect(Self.exchange(raw, [0xf0, 0x03]) == [0xfa, 0xfa])
        try raw.sendKeys(["print"])
        #expect(Self.drain(raw) == [0x57, 0xf0, 0x57])
    }

    @Test("Lang1 and Lang2 (Hangeul, Hanja) send no break in sets 1 and 2, as QEMU's; keys with no set-2 code type nothing through the translation; multimedia keys carry 0xe0")
    func pressOnlyAndMultimedia() throws {
        func bytes(_ combination: Substring, _ set: UInt8) throws -> [UInt8] { PS2Keys.bytes(try PS2Keys.parse(combination), set: set) }
        #expect(try bytes("lang1", 1) == [0xf2] && bytes("lang2", 2) == [0xf1] && bytes("lang1", 3).isEmpty)
        #expect(try bytes("shift-lang1", 1) == [0x2a, 0xf2, 0xaa])
        #expect(try bytes("audiomute", 1) == [0xe0, 0x20, 0xe0, 0xa0])
        #expect(try bytes("volumeup", 2) == [0xe0, 0x32, 0xe0, 0xf0, 0x32] && bytes("volumeup", 3) == [0x95, 0xf0, 0x95])
        #expect(try bytes("f24", 1) == [0x6f, 0xef] && bytes("f24", 2).isEmpty && bytes("f24", 3).isEmpty)
        let translating = Self.controller(config: 0x61)
        try translating.sendKeys(["f24", "sysrq", "lang1"])
        #expect(Self.drain(translating) == [0x54, 0xd4, 0xf2])
    }

    @Test("QEMU's menu (Linux's KEY_MENU) has no set-2 code, so it is skipped in set 2 and through the translation; compose is the key beside the right Windows key")
    func menuAndCompose() throws {
        let menu = try PS2Keys.parse("menu"), compose = try PS2Keys.parse("compose")
        #expect(PS2Keys.bytes(menu, set: 1) == [0xe0, 0x1e, 0xe0, 0x9e])
        #expect(PS2Keys.bytes(menu, set: 2).isEmpty && PS2Keys.bytes(menu, set: 3) == [0x91, 0xf0, 0x91])
        #expect(PS2Keys.bytes(compose, set: 1) == [0xe0, 0x5d, 0xe0, 0xdd])
        #expect(PS2Keys.bytes(compose, set: 2) == [0xe0, 0x2f, 0xe0, 0xf0, 0x2f] && PS2Keys.bytes(compose, set: 3) == [0x8d, 0xf0, 0x8d])
        let kbd = Self.controller(config: 0x61)
        try kbd.sendKeys(["menu", "shift-menu"])
        #expect(Self.drain(kbd) == [0x2a, 0xaa])
    }
}
