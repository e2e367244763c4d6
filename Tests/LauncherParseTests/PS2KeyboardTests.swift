@testable import Launcher
import Testing

/// The keyboard behind the launcher's i8042 (`PS2Keyboard`, `PS2Keys`): QEMU's key names,
/// the bytes of sets 1, 2 and 3, the controller's translation, its commands, and how the controller hands typed bytes to
/// the guest one at a time.
@Suite("the PS/2 keyboard's keys and commands")
struct PS2KeyboardTests {
    @Test("a combination presses in order and releases in reverse; set 1 breaks set bit 7, set 2 breaks are 0xf0 first; extended keys carry 0xe0")
    func combinationBytes() throws {
        let ctrlAltDelete = try PS2Keys.parse("ctrl-alt-delete")
        #expect(PS2Keys.bytes(ctrlAltDelete, set: 1) == [0x1d, 0x38, 0xe0, 0x53, 0xe0, 0xd3, 0xb8, 0x9d])
        #expect(PS2Keys.bytes(ctrlAltDelete, set: 2) == [0x14, 0x11, 0xe0, 0x71, 0xe0, 0xf0, 0x71, 0xf0, 0x11, 0xf0, 0x14])
        #expect(PS2Keys.bytes(try PS2Keys.parse("ret"), set: 1) == [0x1c, 0x9c])
        #expect(PS2Keys.bytes(try PS2Keys.parse("kp_enter"), set: 2) == [0xe0, 0x5a, 0xe0, 0xf0, 0x5a])
        // Raw set-1 codes, as QEMU's sendkey takes them, name the same keys.
        #expect(try PS2Keys.parse("0x1e") == PS2Keys.parse("a"))
        #expect(try PS2Keys.parse("0xe048") == PS2Keys.parse("up"))
    }

    @Test("every key's codes are distinct in sets 1 and 2, set 1 below 0x80 (bit 7 is the break) but Lang1 and Lang2, and the navigation block is the keypad's codes after 0xe0")
    func tableShape() {
        // Pause and Print Screen send sequences of their own (PS2ScanCodeSetTests.pauseAndPrint).
        let special = PS2Keys.byName.filter { $0.value.special == .pause || $0.value.special == .print }
        #expect(Set(special.keys) == ["pause", "print"] && special.values.allSatisfy { $0.set1 == 0 && $0.set2 == 0 && $0.set3 != 0 })
        // keycodemapdb gives `asterisk` the codes of `kp_multiply`.
        #expect(PS2Keys.byName["asterisk"] == PS2Keys.byName["kp_multiply"])
        let keys = PS2Keys.byName.filter { $0.value.special != .pause && $0.value.special != .print && $0.key != "asterisk" }.values
        let inSet2 = keys.filter { $0.set2 != 0 }
        #expect(Set(keys.map { [$0.set1, $0.extended ? 1 : 0] }).count == keys.count)
        #expect(Set(inSet2.map { [$0.set2, $0.extended ? 1 : 0] }).count == inSet2.count)
        #expect(Set(PS2Keys.byName.filter { $0.value.set2 == 0 && $0.value.special == .none }.keys)
                == ["menu", "again", "props", "undo", "front", "copy", "open", "paste", "find", "cut", "help", "lf",
                    "f16", "f17", "f18", "f19", "f20", "f21", "f22", "f23", "f24"], "keycodemapdb's keys without a set-2 code")
        #expect(keys.allSatisfy { $0.set1 != 0 && ($0.set1 < 0x80) == ($0.special != .pressOnly) && $0.set2 != 0xf0 && $0.set2 != 0xe0 })
        #expect(PS2Keys.byName.values.allSatisfy { $0.set3 != 0xf0 && $0.set3 != 0xe0 })
        #expect(PS2Keys.byName.count == 161, "QEMU's QKeyCodes but `unmapped`")
        for (nav, pad) in [("home", "kp_7"), ("up", "kp_8"), ("pgup", "kp_9"), ("left", "kp_4"), ("right", "kp_6"), ("end", "kp_1"),
                           ("down", "kp_2"), ("pgdn", "kp_3"), ("insert", "kp_0"), ("delete", "kp_decimal")] {
            let n = PS2Keys.byName[nav]!, p = PS2Keys.byName[pad]!
            #expect(n.extended && !p.extended && n.set1 == p.set1 && n.set2 == p.set2, "\(nav)")
        }
    }

    @Test("bad names are refused in one line naming the key: unknown, empty, too many together, a raw code the table lacks")
    func badNames() {
        for (combination, why) in [("foo", "unknown key 'foo'"), ("ctrl-", "an empty key name"), ("a-b-c-d-e-f-g-h-i", "more than 8 keys pressed together"),
                                   ("0x7f", "unknown key '0x7f'"), ("0x00", "unknown key '0x00'"), ("0xe11d", "unknown key '0xe11d'"), ("A", "unknown key 'A'"),
                                   ("0x+1e", "unknown key '0x+1e'"), ("0x", "unknown key '0x'"),
                                   (String(repeating: "x", count: 100), "unknown key '\(String(repeating: "x", count: 32))'")] {
            #expect(throws: PS2Keys.BadKeys.self) { try PS2Keys.parse(Substring(combination)) }
            do { _ = try PS2Keys.parse(Substring(combination)) } catch {
                #expect(error.message.contains(why), "\(error.message)")
                #expect(!error.message.contains("\n"))
            }
        }
    }

    @Test("text typed on a US keyboard: every printable ASCII character, tab and newline has a combination of known keys; shifted ones carry Shift; anything else is refused naming it")
    func typing() throws {
        #expect(try PS2Keys.combinations(typing: "Hi! a_b\n") == ["shift-h", "i", "shift-1", "spc", "a", "shift-minus", "b", "ret"])
        let printable = String(decoding: (0x20...0x7e).map { UInt8($0) } + [0x09, 0x0a], as: UTF8.self)
        let all = try PS2Keys.combinations(typing: printable)
        #expect(all.count == printable.utf8.count)
        #expect(Set(all).count == all.count, "two characters share a combination")
        for combination in all {
            #expect(throws: Never.self) { _ = try PS2Keys.parse(Substring(combination)) }
        }
        for (text, why) in [("aé", "character 2 of the text, U+E9,"), ("\u{1b}[2J", "character 1 of the text, U+1B,"), ("x\u{7f}", "U+7F")] {
            do { _ = try PS2Keys.combinations(typing: text); Issue.record("accepted \(text.debugDescription)") } catch {
                #expect(error.message.contains(why), "\(error.message)")
            }
        }
    }

    @Test("commands as QEMU's keyboard answers them: identify and the scan code set depend on translation; set 4 is refused; 0xf5 stops scanning, 0xff resets; unknown commands get 0xfe")
    func commands() throws {
        var k = PS2Keyboard()
        #expect(k.receive(0xf2, translating: true) == [0xfa, 0xab, 0x41])
        #expect(k.receive(0xf2, translating: false) == [0xfa, 0xab, 0x83])
        #expect(k.receive(0xf0, translating: false) == [0xfa] && k.awaiting == 0xf0)
        #expect(k.receive(0x00, translating: false) == [0xfa, 2])
        #expect(k.receive(0xf0, translating: true) == [0xfa] && k.receive(0x00, translating: true) == [0xfa, 0x41])
        #expect(k.receive(0xf0, translating: false) == [0xfa] && k.receive(0x04, translating: false) == [0xfe] && k.set == 2)
        #expect(k.receive(0xf0, translating: false) == [0xfa] && k.receive(0x01, translating: false) == [0xfa] && k.set == 1)
        #expect(k.receive(0xed, translating: false) == [0xfa] && k.receive(0x07, translating: false) == [0xfa] && k.awaiting == 0)
        #expect(k.receive(0xee, translating: false) == [0xee])
        // In set 1 the keyboard sends set 1 even without translation.
        try k.type(["a"], translating: false)
        #expect(k.typed == [0x1e, 0x9e])
        #expect(k.receive(0xf5, translating: false) == [0xfa])
        #expect(!k.scanning && k.typed.isEmpty && k.set == 2)
        #expect(throws: PS2Keyboard.Refusal.notScanning) { try k.type(["a"], translating: false) }
        #expect(k.receive(0xf4, translating: false) == [0xfa] && k.scanning)
        try k.type(["a"], translating: false)
        #expect(k.typed == [0x1c, 0xf0, 0x1c])
        #expect(k.receive(0xff, translating: false) == [0xfa, 0xaa] && k.typed.isEmpty && k.scanning)
        // Unknown commands get "resend" as from QEMU's ps2_write_keyboard (0xfa before).
        #expect(k.receive(0x42, translating: false) == [0xfe])
        #expect(k.receive(0x05, translating: false) == [0xfe])
        #expect([0xe0, 0xf7, 0xfb, 0xfd, 0xfe].map { k.receive($0, translating: false) } == Array(repeating: [0xfe], count: 5))
        // What QEMU's ACKs besides: 0x00, 0xfa, and 0xfc with its data byte.
        #expect(k.receive(0x00, translating: false) == [0xfa] && k.receive(0xfa, translating: false) == [0xfa])
        #expect(k.receive(0xfc, translating: false) == [0xfa] && k.awaiting == 0xfc)
        #expect(k.receive(0x42, translating: false) == [0xfa] && k.awaiting == 0)
    }

    @Test("a byte written to a device enables its port, as QEMU's kbd_write_data: the keyboard clears configuration bit 4, the mouse (0xd4) bit 5")
    func writeEnablesPort() {
        let kbd = I8042()
        _ = kbd.write(I8042.commandPort, 0xad) // keyboard off: 0x71
        #expect(kbd.state.config == 0x71)
        _ = kbd.write(I8042.commandPort, 0xd4) // no 0xa8: the mouse's port stays off
        _ = kbd.write(I8042.dataPort, 0xf4)
        #expect(kbd.state.config == 0x51)
        #expect(kbd.read(I8042.dataPort) == 0xfa)
        #expect(kbd.moveMouse(dx: 5, dy: 0, wheel: 0, buttons: nil))
        #expect(kbd.state.replies == [0x08, 0x05, 0x00], "the packet reaches the output queue")
        _ = kbd.write(I8042.dataPort, 0xee)
        #expect(kbd.state.config == 0x41)
    }

    @Test("typed keys are all or nothing: a bad name or more than the keyboard holds leaves what was typed as it was")
    func allOrNothing() throws {
        var k = PS2Keyboard()
        try k.type(["a"], translating: true)
        #expect(throws: PS2Keyboard.Refusal.self) { try k.type(["b", "nope"], translating: true) }
        #expect(k.typed == [0x1e, 0x9e])
        // 127 two-byte keys fit beside the two bytes waiting; 128 do not.
        #expect(throws: PS2Keyboard.Refusal.full(needed: 256, room: 254)) { try k.type(Array(repeating: "b", count: 128), translating: true) }
        try k.type(Array(repeating: "b", count: 127), translating: true)
        #expect(k.typed.count == PS2Keyboard.typedLimit)
    }

    @Test("the controller hands typed bytes over one at a time, each an IRQ 1 edge; with the keyboard disabled (configuration bit 4) they wait")
    func throughTheController() throws {
        let kbd = I8042()
        final class Rises: @unchecked Sendable { var count = 0 }
        let rises = Rises()
        kbd.connectInterrupts { line, level in if line == 1 && level { rises.count += 1 } }
        #expect(kbd.state.config == 0x61 && kbd.state.status == 0x14)
        _ = kbd.write(I8042.commandPort, 0xad) // disable the keyboard
        try kbd.sendKeys(["shift-a"])
        #expect(kbd.read(I8042.commandPort) & 0x01 == 0, "a byte was handed over while the keyboard was disabled")
        #expect(kbd.state.keyboard.typed == [0x2a, 0x1e, 0x9e, 0xaa])
        _ = kbd.write(I8042.commandPort, 0xae)
        var read: [UInt8] = []
        while kbd.read(I8042.commandPort) & 0x01 != 0 {
            #expect(kbd.state.replies.count == 1)
            read.append(kbd.read(I8042.dataPort))
        }
        #expect(read == [0x2a, 0x1e, 0x9e, 0xaa])
        #expect(rises.count == 4)
        // Scanning off: refused, and the controller's reply (the ack) is what waits.
        _ = kbd.write(I8042.dataPort, 0xf5)
        #expect(throws: PS2Keyboard.Refusal.notScanning) { try kbd.sendKeys(["a"]) }
        #expect(kbd.read(I8042.dataPort) == 0xfa && kbd.read(I8042.commandPort) & 0x01 == 0)
    }
}
