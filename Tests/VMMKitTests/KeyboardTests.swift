import Foundation
import Testing
import VMMControl

/// Keys typed into a running guest (`vmm ctl PATH sendkey` and `type`, `PUT /vm/keys`,
/// QEMU's `sendkey`; Firecracker's SendCtrlAltDel), read by a keyboard driver written for QEMU
/// (Examples/GuestImages/qemu/keyboard.S: IRQ 1, port 0x60, the controller as SeaBIOS
/// leaves it), which prints each byte it reads.
@Suite("the PS/2 keyboard: keys typed through the control API on real KVM", .serialized,
       .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct KeyboardTests {
    static let ready = "keyboard: configuration 61, ready\n"

    /// `vmm run keyboard.elf` serving the API on `socket`, its console in `console`;
    /// returns once the guest has its interrupt routed and said so.
    static func start(_ dir: String, append: [String] = [], ready: String = Self.ready) throws -> (Spawned, String, String) {
        let (vmm, console, socket) = ControlAPITests.served(["run", VMMProcess.guest("keyboard.elf")] + append, in: dir)
        #expect(eventually { Self.printed(console) == ready }, "console: \(Self.printed(console))")
        return (vmm, console, socket)
    }

    static func printed(_ console: String) -> String { (try? String(contentsOfFile: console, encoding: .utf8)) ?? "" }

    @Test("set 1 through the controller's translation: shift-a, an extended key, Firecracker's Ctrl-Alt-Del and typed text arrive as QEMU sends them, each byte an IRQ 1; Esc ends the guest")
    func translatedSet1() throws {
        let (vmm, console, socket) = try Self.start(try VMMProcess.scratch("keyboard", "set1"))
        defer { vmm.kill() }
        for command in [["sendkey", "shift-a", "up", "pause"], ["ctrl-alt-del"], ["type", "Hi!\n"], ["sendkey", "esc"]] {
            let r = try ControlAPITests.ctl([socket] + command)
            #expect(r.status == 0, "\(command): \(r.stderr)")
            #expect(r.stdout == "")
        }
        let r = vmm.wait()
        #expect(r.status == (0x1d << 1) | 1, "stderr: \(r.stderr)")
        #expect(r.stderr == "")
        // Shift down, a down, a up, shift up; E0 48 / E0 C8 (up); Pause (pressed only); Ctrl,
        // Alt, E0 53 (Delete) down, then up in reverse; "Hi!\n" as shift-h, i, shift-1, Enter;
        // Esc down and up.
        #expect(Self.printed(console) == Self.ready + "2A 1E 9E AA E0 48 E0 C8 E1 1D 45 E1 9D C5 1D 38 E0 53 E0 D3 B8 9D "
            + "2A 23 A3 AA 17 97 2A 02 82 AA 1C 9C 01 81 \n")
    }

    @Test("set 2 with translation switched off by the guest: breaks are 0xf0 before the make code")
    func rawSet2() throws {
        let (vmm, console, socket) = try Self.start(try VMMProcess.scratch("keyboard", "set2"), append: ["--append", "set2"],
                                                    ready: "keyboard: configuration 21, ready\n")
        defer { vmm.kill() }
        let r = try ControlAPITests.ctl([socket, "sendkey", "shift-a", "up", "print", "esc"])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        #expect(vmm.wait().status == (0x1d << 1) | 1)
        #expect(Self.printed(console) == "keyboard: configuration 21, ready\n12 1C F0 1C F0 12 E0 75 E0 F0 75 "
            + "E0 12 E0 7C E0 F0 7C E0 F0 12 76 F0 76 \n")
    }

    @Test("set 3, which the guest selects with translation off (0xf0 0x03, then 0xf0 0x00 answers 3): one code a key, no 0xe0 prefixes, 0xf0 before each break")
    func rawSet3() throws {
        let ready = "keyboard: configuration 21 FA FA FA FA 03, ready\n"
        let (vmm, console, socket) = try Self.start(try VMMProcess.scratch("keyboard", "set3"), append: ["--append", "set3"], ready: ready)
        defer { vmm.kill() }
        let r = try ControlAPITests.ctl([socket, "sendkey", "shift-a", "up", "volumeup", "esc"])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        #expect(vmm.wait().status == (0x1d << 1) | 1)
        #expect(Self.printed(console) == ready + "12 1C F0 1C F0 12 63 F0 63 95 F0 95 08 F0 08 \n")
    }

    @Test("IRQ 1 through the 8259 PIC, as OSDev's tutorials take it (remapped to vector 0x21, EOI to port 0x20), with nothing set up in the local APIC")
    func throughThePIC() throws {
        let (vmm, console, socket) = try Self.start(try VMMProcess.scratch("keyboard", "pic"), append: ["--append", "pic"])
        defer { vmm.kill() }
        for command in [["sendkey", "a"], ["type", "x"], ["sendkey", "esc"]] {
            let r = try ControlAPITests.ctl([socket] + command)
            #expect(r.status == 0, "\(command): \(r.stderr)")
        }
        #expect(vmm.wait().status == (0x1d << 1) | 1)
        #expect(Self.printed(console) == Self.ready + "1E 9E 2D AD 01 81 \n")
    }

    @Test("keys typed into a paused guest wait in the keyboard through a snapshot: the guest restored in a new process reads them")
    func typedSurviveSnapshot() throws {
        let dir = try VMMProcess.scratch("keyboard", "snapshot")
        let snap = dir + "/snap"
        let (vmm, console, socket) = try Self.start(dir)
        defer { vmm.kill() }
        for command in [["pause"], ["sendkey", "a", "b", "esc"], ["snapshot", snap], ["stop"]] {
            let r = try ControlAPITests.ctl([socket] + command)
            #expect(r.status == 0, "\(command): \(r.stderr)")
        }
        #expect(vmm.wait().status == 0)
        #expect(Self.printed(console) == Self.ready, "the paused guest read a key")
        // The first byte in the controller's output buffer, the rest in the keyboard.
        let saved = try String(contentsOfFile: snap + "/device-launcher-devices.state", encoding: .utf8)
        #expect(saved.contains("\ni8042 0x1c 0x61 0xcf 0x0 0x61 0x1e\nps2-keyboard 2 1 0x0 9e30b00181\n"), "\(saved)")
        let restored = try PluginListingTests.run(["restore", snap, "--serial", "stdio", "--max-seconds", "60"], bound: 120)
        #expect(restored.stdout == "1E 9E 30 B0 01 81 \n")
        #expect(restored.stderr == "")
        #expect(restored.status == (0x1d << 1) | 1)
    }

    @Test("bad keys are refused whole (400, ctl status 4) and nothing is typed; sendkey without keys or text off a US keyboard is a usage error; a machine without a keyboard answers 501")
    func refused() throws {
        let (vmm, console, socket) = try Self.start(try VMMProcess.scratch("keyboard", "refused"))
        defer { vmm.kill() }
        let bad = try ControlAPITests.ctl([socket, "sendkey", "a", "ctrl-foo"])
        #expect(bad.status == 4)
        #expect(bad.stdout.hasPrefix(#"{"fault_message": "unknown key 'foo' (QEMU's names: a-z, 0-9, ret, spc"#), "\(bad.stdout)")
        #expect(bad.stderr == "vmm ctl: sendkey: HTTP 400\n")
        let none = try ControlAPITests.ctl([socket, "sendkey"])
        #expect(none.status == 2)
        #expect(none.stderr.contains("ctl sendkey needs keys"))
        let accent = try ControlAPITests.ctl([socket, "type", "café"])
        #expect(accent.status == 2)
        #expect(accent.stderr == "vmm: ctl type: character 4 of the text, U+E9, is not on a US keyboard (letters, digits, punctuation, space, tab, newline)\n")
        for body in [#"{"keys": "   "}"#, #"{"keys": "a--b"}"#, #"{"keys": "a-b-c-d-e-f-g-h-i"}"#, #"{"key": "a"}"#] {
            let (status, answer) = try RawHTTP.send(socket, "PUT /vm/keys HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                                                    + "Content-Length: \(body.utf8.count)\r\n\r\n\(body)")
            #expect(status == 400, "\(body): \(answer)")
        }
        // Too much at once: more than the keyboard holds (256 bytes) is refused whole.
        let many = Array(repeating: "ctrl-alt-delete", count: 40)
        let full = try ControlAPITests.ctl([socket, "sendkey"] + many)
        #expect(full.status == 4)
        #expect(full.stdout.contains("the keyboard holds 256 more bytes the guest has not read; these keys need 320"), "\(full.stdout)")
        // Nothing of the refused requests reached the guest: Esc is the first it reads.
        #expect(try ControlAPITests.ctl([socket, "sendkey", "esc"]).status == 0)
        #expect(vmm.wait().status == (0x1d << 1) | 1)
        #expect(Self.printed(console) == Self.ready + "01 81 \n")

        let guest = try TestGuest("spin")
        let api = ControlAPI(VMController(vm: guest.vm))
        #expect(api.keys(Array(#"{"keys": "a"}"#.utf8)) == .init(status: 501, body: #"{"fault_message": "this machine has no keyboard (no i8042)"}"#))
        #expect(api.action(Array(#"{"action_type": "SendCtrlAltDel"}"#.utf8)).status == 501)
    }
}
