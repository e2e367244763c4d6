@testable import Launcher
import Testing

/// The mouse behind the launcher's i8042 (`PS2Mouse`), as QEMU's PS/2 mouse answers a
/// driver's commands through controller command 0xd4; the guest on real KVM is
/// `QEMUCompatTests.mouse`.
@Suite("the PS/2 mouse's commands")
struct PS2MouseTests {
    /// `bytes` to `mouse`, its replies all together.
    static func send(_ mouse: inout PS2Mouse, _ bytes: [UInt8]) -> [UInt8] { bytes.flatMap { mouse.receive($0) } }

    @Test("IntelliMouse (200, 100, 80) and Explorer (200, 200, 80) detection by sample rates, as QEMU's: the id, and a fourth packet byte")
    func detection() {
        var m = PS2Mouse()
        #expect(Self.send(&m, [0xff]) == [0xfa, 0xaa, 0x00])
        #expect(Self.send(&m, [0xeb]) == [0xfa, 0x08, 0, 0])
        #expect(Self.send(&m, [0xf3, 200, 0xf3, 100, 0xf3, 80, 0xf2]) == [0xfa, 0xfa, 0xfa, 0xfa, 0xfa, 0xfa, 0xfa, 3])
        #expect(Self.send(&m, [0xeb]) == [0xfa, 0x08, 0, 0, 0])
        #expect(Self.send(&m, [0xf3, 200, 0xf3, 200, 0xf3, 80, 0xf2]).suffix(1) == [4])
        // A broken sequence starts over; a reset makes it a standard mouse again.
        #expect(Self.send(&m, [0xff, 0xf3, 200, 0xf3, 60, 0xf3, 80, 0xf2]).suffix(1) == [0])
        #expect(m.detect == 0 && m.sampleRate == 80)
    }

    @Test("status, resolution, scaling, stream and remote modes, reporting; wrap mode echoes all but 0xec and 0xff; an unknown command has no reply")
    func commands() {
        var m = PS2Mouse()
        #expect(Self.send(&m, [0xe9]) == [0xfa, 0, 0, 0])
        #expect(Self.send(&m, [0xf6, 0xe8, 3, 0xe7, 0xf0, 0xf4, 0xe9]) == [0xfa, 0xfa, 0xfa, 0xfa, 0xfa, 0xfa, 0xfa, 0x70, 3, 100])
        #expect(Self.send(&m, [0xe6, 0xea, 0xf5, 0xe9]) == [0xfa, 0xfa, 0xfa, 0xfa, 0, 3, 100])
        #expect(Self.send(&m, [0xee, 0x55, 0xe9, 0xec, 0xe9]) == [0xfa, 0x55, 0xe9, 0xfa, 0xfa, 0, 3, 100])
        // As QEMU's, a reset in wrap mode resets the mouse and stays in wrap mode.
        #expect(Self.send(&m, [0xee, 0xff, 0x12]) == [0xfa, 0xfa, 0xaa, 0, 0x12])
        #expect(Self.send(&m, [0xec, 0xe1, 0x00]) == [0xfa])
    }

    @Test("the host's motion as QEMU's packets: dropped while reporting is off, at most ±127 a packet, y up, the IntelliMouse wheel byte and Explorer's fourth and fifth buttons; in remote mode only a poll reports")
    func motion() {
        var m = PS2Mouse()
        let ignored = m.event(dx: 5, dy: 5, wheel: 0, buttons: 1)
        #expect(!ignored && m == PS2Mouse())
        _ = Self.send(&m, [0xf4])
        _ = m.event(dx: 300, dy: -2, wheel: 0, buttons: 0x01)
        var out = Self.packets(&m)
        #expect(out == [[0x29, 0x7f, 0xfe], [0x09, 0x7f, 0x00], [0x09, 0x2e, 0x00]])
        // A button released with no motion is a packet; held buttons stay when not given.
        _ = m.event(dx: 0, dy: 0, wheel: 0, buttons: 0)
        out = Self.packets(&m)
        #expect(out == [[0x08, 0, 0]])
        _ = m.event(dx: -1, dy: 0, wheel: 0, buttons: nil)
        out = Self.packets(&m)
        #expect(out == [[0x18, 0xff, 0]])
        _ = Self.send(&m, [0xf3, 200, 0xf3, 100, 0xf3, 80])
        _ = m.event(dx: 0, dy: 0, wheel: -3, buttons: nil)
        out = Self.packets(&m)
        #expect(out == [[0x08, 0, 0, 0xfd]])
        _ = Self.send(&m, [0xf3, 200, 0xf3, 200, 0xf3, 80])
        _ = m.event(dx: 0, dy: 0, wheel: 9, buttons: 0x18)
        out = Self.packets(&m)
        #expect(out == [[0x08, 0, 0, 0x37], [0x08, 0, 0, 0x32]])
        // Remote mode: motion waits for a poll.
        _ = Self.send(&m, [0xf0])
        _ = m.event(dx: 4, dy: 0, wheel: 0, buttons: 0)
        out = Self.packets(&m)
        #expect(out.isEmpty)
        let polled = Self.send(&m, [0xeb])
        #expect(polled == [0xfa, 0x08, 0x04, 0, 0])
        // Motion past the bound is dropped, never an overflow.
        _ = Self.send(&m, [0xea])
        for _ in 0..<3 { _ = m.event(dx: .max, dy: .min, wheel: .max, buttons: nil) }
        #expect(m.dx == PS2Mouse.maxDelta && m.dy == -PS2Mouse.maxDelta && m.dz == PS2Mouse.maxDelta)
    }

    /// Every packet `m` streams now.
    static func packets(_ m: inout PS2Mouse) -> [[UInt8]] {
        var all: [[UInt8]] = []
        while let p = m.streamPacket() { all.append(p) }
        return all
    }

    @Test("the controller queues whole packets while they fit, 4 bytes short of full, and the rest as the guest reads, each byte the mouse's (status bit 5); IRQ 12 when the configuration allows it")
    func controllerQueue() {
        let kbd = I8042()
        _ = kbd.write(I8042.commandPort, 0xa8) // the auxiliary port on (SeaBIOS leaves it off)
        for byte: UInt8 in [0xf4] { _ = kbd.write(I8042.commandPort, 0xd4); _ = kbd.write(I8042.dataPort, byte) }
        #expect(kbd.read(I8042.dataPort) == 0xfa)
        let taken = kbd.moveMouse(dx: 127 * 7, dy: 0, wheel: 0, buttons: 0)
        #expect(taken)
        // 16 bytes less the 4 kept for replies: 4 packets of 3 now, the other 3 after reads.
        #expect(kbd.state.replies.count == 12 && kbd.state.auxReplies == 0xfff)
        var bytes: [UInt8] = []
        while kbd.read(I8042.commandPort) & 0x21 == 0x21 { bytes.append(kbd.read(I8042.dataPort)) }
        #expect(bytes == Array([[UInt8]](repeating: [0x08, 0x7f, 0x00], count: 7).joined()))
        // With the auxiliary port disabled (0xa7) the motion waits in the mouse; 0xa8 lets it out.
        _ = kbd.write(I8042.commandPort, 0xa7)
        _ = kbd.moveMouse(dx: 1, dy: 0, wheel: 0, buttons: 0)
        let held = kbd.state.replies.isEmpty
        #expect(held)
        _ = kbd.write(I8042.commandPort, 0xa8)
        #expect(kbd.state.replies == [0x08, 0x01, 0x00])
    }

    @Test("a reset (the keyboard's 0xff, 0xf5, 0xf6; the mouse's 0xff) empties its device's queue behind the output buffer, as QEMU's ps2_reset_queue; the mouse's packets leave room for replies")
    func resetEmptiesQueue() {
        let kbd = I8042()
        _ = kbd.write(I8042.commandPort, 0xa8)
        _ = kbd.write(I8042.commandPort, 0xd4); _ = kbd.write(I8042.dataPort, 0xf4)
        _ = kbd.write(I8042.dataPort, 0xf2) // the keyboard's identify, queued behind the mouse's ACK
        _ = kbd.moveMouse(dx: 127 * 9, dy: 0, wheel: 0, buttons: 0)
        #expect(kbd.state.replies.count == 10, "the ACKs, the id and 2 packets: 4 bytes left for replies")
        _ = kbd.write(I8042.commandPort, 0xd4); _ = kbd.write(I8042.dataPort, 0xff)
        // The output buffer's byte stays; the keyboard's bytes stay; the mouse's queued packets go.
        #expect(kbd.state.replies == [0xfa, 0xfa, 0xab, 0x41, 0xfa, 0xaa, 0x00])
        #expect(kbd.state.auxReplies == 0b111_0001)
        // The keyboard's reset, likewise, leaves the mouse's bytes.
        _ = kbd.write(I8042.dataPort, 0xff)
        #expect(kbd.state.replies == [0xfa, 0xfa, 0xaa, 0x00, 0xfa, 0xaa])
        #expect(kbd.state.auxReplies == 0b1111)
        // Not a reset: 0xff as the data of a command waiting for one (set LEDs).
        _ = kbd.write(I8042.dataPort, 0xed)
        _ = kbd.write(I8042.dataPort, 0xff)
        #expect(kbd.state.replies.suffix(2) == [0xfa, 0xfa] && kbd.state.replies.count == 8)
        // 0xf5 and 0xf6 reset the keyboard too: its queued bytes go, the mouse's stay.
        _ = kbd.write(I8042.dataPort, 0xf2)
        _ = kbd.write(I8042.dataPort, 0xf5)
        #expect(kbd.state.replies == [0xfa, 0xfa, 0xaa, 0x00, 0xfa] && kbd.state.auxReplies == 0b1111)
        _ = kbd.write(I8042.dataPort, 0xf2)
        _ = kbd.write(I8042.dataPort, 0xf6)
        #expect(kbd.state.replies == [0xfa, 0xfa, 0xaa, 0x00, 0xfa] && kbd.state.auxReplies == 0b1111)
    }

    @Test("one device's unread bytes never leave the other's reset without room: each fills at most 12 of the 16, as QEMU gives each its own queue")
    func otherDeviceRoom() {
        // fuzz-machine-ports' reproducer: 15 keyboard ACKs unread, then a mouse reset.
        let kbd = I8042()
        for _ in 0..<15 { _ = kbd.write(I8042.dataPort, 0xf4) } // enable scanning: an ACK each
        #expect(kbd.state.replies == [UInt8](repeating: 0xfa, count: 12) && kbd.state.auxReplies == 0, "12 of the keyboard's, the rest dropped")
        _ = kbd.write(I8042.commandPort, 0xd4); _ = kbd.write(I8042.dataPort, 0xff)
        #expect(kbd.state.replies == [UInt8](repeating: 0xfa, count: 12) + [0xfa, 0xaa, 0x00] && kbd.state.auxReplies == 0b111 << 12)
        // And the other way round: 12 of the mouse's ACKs, then the keyboard's reset.
        let other = I8042()
        for _ in 0..<15 { _ = other.write(I8042.commandPort, 0xd4); _ = other.write(I8042.dataPort, 0xf5) }
        #expect(other.state.replies.count == 12 && other.state.auxReplies == 0xfff)
        _ = other.write(I8042.dataPort, 0xff)
        #expect(other.state.replies == [UInt8](repeating: 0xfa, count: 12) + [0xfa, 0xaa] && other.state.auxReplies == 0xfff)
    }

    @Test("the mouse reads back from a snapshot as saved (no line: as after a reset); a damaged line is refused naming the value")
    func snapshot() throws {
        var m = PS2Mouse()
        _ = Self.send(&m, [0xff, 0xf3, 200, 0xf3, 200, 0xf3, 80, 0xf4, 0xf3])
        var k = BuiltInDeviceStateTests.full.i8042!
        k.mouse = m
        let state = BuiltInDeviceState(i8042: k)
        let text = String(decoding: state.encoded(), as: UTF8.self)
        #expect(text.contains("\nps2-mouse 0x20 0x2 0x50 0x0 0x4 0x0 0xf3 0 0 0 0x0 0\n"), "\(text)")
        k.mouse.dx = -300
        k.mouse.buttons = 0x11
        k.mouse.owed = true
        let moving = BuiltInDeviceState(i8042: k)
        let movingText = String(decoding: moving.encoded(), as: UTF8.self)
        #expect(movingText.contains("\nps2-mouse 0x20 0x2 0x50 0x0 0x4 0x0 0xf3 -300 0 0 0x11 1\n"), "\(movingText)")
        #expect((try? BuiltInDeviceStateTests.decode(movingText).get()) == moving)
        #expect((try? BuiltInDeviceStateTests.decode(text).get()) == state)
        #expect(!String(decoding: BuiltInDeviceStateTests.full.encoded(), as: UTF8.self).contains("ps2-mouse"))
        let i8042 = "i8042 0x1c 0x61 0xcf 0x0 0x0 -\n"
        let rest = " 0 0 0 0x0 0"
        for (line, why) in [("ps2-mouse 0x1 0x2 0x50 0x0 0x0 0x0 0x0" + rest, "ps2-mouse status 0x1 (only bits 4-6 are kept)"),
                            ("ps2-mouse 0x0 0x2 0x50 0x2 0x0 0x0 0x0" + rest, "ps2-mouse wrap 0x2 (0 or 1)"),
                            ("ps2-mouse 0x0 0x2 0x50 0x0 0x2 0x0 0x0" + rest, "ps2-mouse type 2 (0, 3 or 4)"),
                            ("ps2-mouse 0x0 0x2 0x50 0x0 0x0 0x4 0x0" + rest, "ps2-mouse detection state 4 (0 to 3)"),
                            ("ps2-mouse 0x0 0x2 0x50 0x0 0x0 0x0 0xf4" + rest, "ps2-mouse waiting command 0xf4 (0, 0xe8 or 0xf3)"),
                            ("ps2-mouse 0x0 0x2 0x50 0x0 0x0 0x0 0x0", "the wrong number of values"),
                            ("ps2-mouse 0x0 0x2 0x100 0x0 0x0 0x0 0x0" + rest, "ps2-mouse sample rate '0x100'"),
                            ("ps2-mouse 0x20 0x2 0x50 0x0 0x0 0x0 0x0 16385 0 0 0x0 1", "ps2-mouse x motion 16385 (at most 16384 either way)"),
                            ("ps2-mouse 0x20 0x2 0x50 0x0 0x0 0x0 0x0 0 +5 0 0x0 1", "ps2-mouse y motion '+5'"),
                            ("ps2-mouse 0x20 0x2 0x50 0x0 0x0 0x0 0x0 0 0 -99999 0x0 1", "ps2-mouse wheel motion '-99999'"),
                            ("ps2-mouse 0x20 0x2 0x50 0x0 0x0 0x0 0x0 0 0 0 0x20 1", "ps2-mouse buttons 0x20 (bits 0-4)"),
                            ("ps2-mouse 0x20 0x2 0x50 0x0 0x0 0x0 0x0 0 0 0 0x0 2", "ps2-mouse owed '2' (0 or 1)")] {
            let r = BuiltInDeviceStateTests.decode("vmm-launcher-devices 1\n\(i8042)\(line)\nend\n")
            guard case let .failure(error) = r else { Issue.record("accepted: \(line)"); continue }
            #expect(error.message.contains(why), "\(line): \(error.message)")
        }
        let alone = BuiltInDeviceStateTests.decode("vmm-launcher-devices 1\nps2-mouse 0x0 0x2 0x50 0x0 0x0 0x0 0x0\(rest)\nend\n")
        guard case let .failure(error) = alone else { Issue.record("a mouse without its controller accepted"); return }
        #expect(error.message.contains("ps2-mouse without i8042"))
    }
}
