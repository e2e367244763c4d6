import Foundation
import Testing
import VMMKit

/// QEMU's i8042 as guests written for it use it: interrupts, the mouse's commands through
/// 0xd4, and motion from the host (issue 13). The kernels are Examples/GuestImages/qemu.
@Suite("QEMU's i8042 on real KVM", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct QEMUCompatI8042Tests {
    @Test("the i8042's interrupts as QEMU's: each keyboard byte an IRQ 1, a mouse byte an IRQ 12, none with the configuration's keyboard interrupt off")
    func keyboardControllerInterrupts() throws {
        let r = try VMMProcess.run(["run", VMMProcess.guest("kbd_irq.elf"), "--max-seconds", QEMUCompatTests.halfMinute])
        #expect(r.stdout == "irq 1, identify: 00FAAB83\nirq 12, mouse byte: 0000005A\nirq 1 off, polled echo: 000000EE\nirq 1 count: 00000003\n")
        #expect(r.stderr == "")
        #expect(r.status == (0x1b << 1) | 1)
    }

    @Test("the i8042's mouse as QEMU's: a driver's setup through 0xd4 (reset, identify, IntelliMouse detection, status, resolution, reporting, a poll, wrap mode) gets QEMU's replies, each the mouse's byte; an unknown command none")
    func mouse() throws {
        let r = try VMMProcess.run(["run", VMMProcess.guest("mouse.elf"), "--strict-io", "--max-seconds", QEMUCompatTests.halfMinute])
        #expect(r.stdout == """
            reset: FA AA 00
            id: FA 00
            rates 200 100 80: FA FA FA FA FA FA
            id: FA 03
            status: FA 00 02 50
            resolution 3: FA FA
            enable: FA
            status: FA 20 03 50
            poll: FA 08 00 00 00
            wrap 55 ec: FA 55 FA
            unknown e1: --

            """)
        #expect(r.stderr == "")
        #expect(r.status == (0x1e << 1) | 1)
    }

    @Test("a byte written to a device enables its port, as QEMU's: the mouse answers through 0xd4 with its port disabled (no 0xa8) and the configuration byte then shows both ports on")
    func writeEnablesPorts() throws {
        let r = try VMMProcess.run(["run", VMMProcess.guest("mouse.elf"), "--append", "noa8", "--strict-io", "--max-seconds", QEMUCompatTests.halfMinute])
        // 0x61 | 0x10 (0xad): the mouse's bytes clear 0x20, the keyboard's echo 0x10.
        #expect(r.stdout.hasSuffix("unknown e1: --\nconfig: k51\nkeyboard ee: kEE\nconfig: k41\n"), "\(r.stdout)")
        #expect(r.stdout.hasPrefix("reset: FA AA 00\n"))
        #expect(r.stderr == "")
        #expect(r.status == (0x1e << 1) | 1)
    }

    @Test("the host moves the mouse (`vmm ctl PATH mouse`, PUT /vm/mouse): the guest reads QEMU's packets, at most 127 a packet, y up, the left button held; 409 while the guest's mouse is not reporting")
    func mouseMotion() throws {
        let dir = try VMMProcess.scratch("mouse", "motion")
        let (vmm, console, socket) = ControlAPITests.served(["run", VMMProcess.guest("mouse.elf"), "--append", "wait"], in: dir)
        defer { vmm.kill() }
        #expect(eventually { KeyboardTests.printed(console).hasSuffix("waiting for the mouse\n") }, "console: \(KeyboardTests.printed(console))")
        let r = try ControlAPITests.ctl([socket, "mouse", "--", "200", "-3", "left"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(vmm.wait().status == (0x1e << 1) | 1)
        // IntelliMouse packets (the guest detected one): 127 right and 3 up, then 73 more.
        #expect(KeyboardTests.printed(console).hasSuffix("waiting for the mouse\n 09 7F 03 00 09 49 00 00\n"), "\(KeyboardTests.printed(console))")

        // vgatext.elf never sets the mouse up: its reporting is off, and the motion is refused.
        let textConsole = dir + "/text.txt", textSocket = dir + "/text.sock"
        let text = Spawned(VMMProcess.binary, ["run", VMMProcess.guest("vgatext.elf"), "--append", "spin", "--serial", "file:\(textConsole)",
                                               "--api-sock", textSocket, "--max-seconds", "120"])
        defer { text.kill() }
        #expect(eventually { KeyboardTests.printed(textConsole).hasSuffix("vga: written\n") })
        let refused = try ControlAPITests.ctl([textSocket, "mouse", "1", "1"])
        #expect(refused.status == 4)
        #expect(refused.stdout == #"{"fault_message": "the guest has not switched the mouse's reporting on (command 0xf4 through 0xd4): QEMU's drops such motion"}"# + "\n")
        _ = try ControlAPITests.ctl([textSocket, "stop"])
        #expect(text.wait().status == 0)
    }
}
