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

    @Test("the mouse reads back from a snapshot as saved (no line: as after a reset); a damaged line is refused naming the value")
    func snapshot() throws {
        var m = PS2Mouse()
        _ = Self.send(&m, [0xff, 0xf3, 200, 0xf3, 200, 0xf3, 80, 0xf4, 0xf3])
        var k = BuiltInDeviceStateTests.full.i8042!
        k.mouse = m
        let state = BuiltInDeviceState(i8042: k)
        let text = String(decoding: state.encoded(), as: UTF8.self)
        #expect(text.contains("\nps2-mouse 0x20 0x2 0x50 0x0 0x4 0x0 0xf3\n"), "\(text)")
        #expect((try? BuiltInDeviceStateTests.decode(text).get()) == state)
        #expect(!String(decoding: BuiltInDeviceStateTests.full.encoded(), as: UTF8.self).contains("ps2-mouse"))
        let i8042 = "i8042 0x1c 0x61 0xcf 0x0 0x0 -\n"
        for (line, why) in [("ps2-mouse 0x1 0x2 0x50 0x0 0x0 0x0 0x0", "ps2-mouse status 0x1 (only bits 4-6 are kept)"),
                            ("ps2-mouse 0x0 0x2 0x50 0x2 0x0 0x0 0x0", "ps2-mouse wrap 0x2 (0 or 1)"),
                            ("ps2-mouse 0x0 0x2 0x50 0x0 0x2 0x0 0x0", "ps2-mouse type 2 (0, 3 or 4)"),
                            ("ps2-mouse 0x0 0x2 0x50 0x0 0x0 0x4 0x0", "ps2-mouse detection state 4 (0 to 3)"),
                            ("ps2-mouse 0x0 0x2 0x50 0x0 0x0 0x0 0xf4", "ps2-mouse waiting command 0xf4 (0, 0xe8 or 0xf3)"),
                            ("ps2-mouse 0x0 0x2 0x50 0x0 0x0 0x0", "the wrong number of values"),
                            ("ps2-mouse 0x0 0x2 0x100 0x0 0x0 0x0 0x0", "ps2-mouse sample rate '0x100'")] {
            let r = BuiltInDeviceStateTests.decode("vmm-launcher-devices 1\n\(i8042)\(line)\nend\n")
            guard case let .failure(error) = r else { Issue.record("accepted: \(line)"); continue }
            #expect(error.message.contains(why), "\(line): \(error.message)")
        }
        let alone = BuiltInDeviceStateTests.decode("vmm-launcher-devices 1\nps2-mouse 0x0 0x2 0x50 0x0 0x0 0x0 0x0\nend\n")
        guard case let .failure(error) = alone else { Issue.record("a mouse without its controller accepted"); return }
        #expect(error.message.contains("ps2-mouse without i8042"))
    }
}
