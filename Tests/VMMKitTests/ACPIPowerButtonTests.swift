import Foundation
import Testing
import VMMControl
@testable import VMMSnapshot

/// ACPI's PM1a event block (ports 0x600-0x603) and the fixed-feature power button the
/// control API presses (`vmm ctl PATH power-button`, as QEMU's `system_powerdown`).
@Suite("ACPI power button and PM1a event block on real KVM", .serialized, .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct ACPIPowerButtonTests {
    /// `text` with each PM timer count the guest printed (8 hex digits) as "T", and with
    /// how many reads its 0.1 s took as "N": they vary from run to run.
    static func masked(_ text: String) -> String {
        text.replacing(try! Regex("PM timer [0-9A-F]{8}"), with: "PM timer T")
            .replacing(try! Regex("0\\.1 s in [0-9A-F]{8} reads"), with: "0.1 s in N reads")
    }

    /// The count in hex after `marker`, the last such in `text`.
    static func count(after marker: String, in text: String) -> UInt32? {
        guard let range = text.range(of: marker, options: .backwards) else { return nil }
        return UInt32(text[range.upperBound...].prefix { $0.isHexDigit }, radix: 16)
    }

    /// mov $0x602,%dx; mov $0x21,%al; out %al,(%dx); inc %dx; mov $0x5,%al; out %al,(%dx)
    /// (PM1a_EN a byte at a time: 0x0521); mov $0x600,%dx; mov $0xffff,%ax; out %ax,(%dx)
    /// (write 1 to clear every status bit); in (%dx),%eax (status | enable << 16);
    /// cmp $0x05210000,%eax; mov $0x24,%al; jne 1f; mov $0x25,%al; 1: out %al,$0xf4; hlt
    static let eventBlockProbe: [UInt8] = [
        0x66, 0xba, 0x02, 0x06, 0xb0, 0x21, 0xee, 0x66, 0xff, 0xc2, 0xb0, 0x05,
        0xee, 0x66, 0xba, 0x00, 0x06, 0x66, 0xb8, 0xff, 0xff, 0x66, 0xef, 0xed,
        0x3d, 0x00, 0x00, 0x21, 0x05, 0xb0, 0x24, 0x75, 0x02, 0xb0, 0x25, 0xe6,
        0xf4, 0xf4,
    ]

    @Test("PM1a status and enable are registers, not unassigned I/O: enable keeps bytes written apart, status is write-1-to-clear and holds nothing unpressed")
    func eventBlock() throws {
        let probe = try VMMProcess.temp("pm1evt.bin", Self.eventBlockProbe)
        let r = try VMMProcess.run(["run", probe, "--load-addr", "0x100000", "--max-seconds", "20", "--strict-io"])
        #expect(r.status == (0x25 << 1) | 1, "stderr: \(r.stderr)")
        #expect(r.stderr == "")
    }

    @Test("the power button: an ACPI guest waiting in `sti; hlt` takes the SCI, reads PWRBTN_STS, clears it and switches off (status 0)")
    func guestShutsDown() throws {
        let dir = try VMMProcess.scratch("button", "shutdown")
        let (vmm, console, socket) = ControlAPITests.served(["run", VMMProcess.guest("acpi.elf"), "--append", "button"], in: dir)
        defer { vmm.kill() }
        func printed() -> String { Self.masked((try? String(contentsOfFile: console, encoding: .utf8)) ?? "") }
        #expect(eventually { printed().hasSuffix("acpi: waiting for the power button, PM timer T\n") }, "console: \(printed())")
        let press = try ControlAPITests.ctl([socket, "power-button"])
        #expect(press.status == 0, "stderr: \(press.stderr)")
        #expect(press.stdout == "")
        let r = vmm.wait()
        #expect(r.status == 0, "stderr: \(r.stderr)")
        #expect(r.stderr == "")
        // No "still running after SLP_EN": the guest's own switch-off ended the run.
        #expect(printed().hasSuffix("""
            acpi: PM1a control reads 00000001
            acpi: PM timer: 0.1 s in N reads, each within 24 bits, none behind the last
            acpi: waiting for the power button, PM timer T
            acpi: SCI: PM1a status 00000100, after clearing 00000000, PM timer T

            """), "console: \(printed())")
    }

    /// The PM timer's count travels too: the saved count is one the guest's clock could
    /// have reached, and the restored guest reads on from the count in the snapshot (set
    /// half a wrap on here, so a timer that restarted from 0 would be read far from it).
    @Test("a press the paused guest has not yet taken survives a snapshot: the guest restored in a new process takes the SCI and switches off; the PM timer goes on from the saved count")
    func pressSurvivesSnapshot() throws {
        let dir = try VMMProcess.scratch("button", "snapshot")
        let snap = dir + "/snap"
        let started = PMTimerGuestTests.now()
        let (vmm, console, socket) = ControlAPITests.served(["run", VMMProcess.guest("acpi.elf"), "--append", "button"], in: dir)
        defer { vmm.kill() }
        func printed() -> String { (try? String(contentsOfFile: console, encoding: .utf8)) ?? "" }
        let waiting = "acpi: waiting for the power button, PM timer "
        #expect(eventually { Self.masked(printed()).hasSuffix("acpi: waiting for the power button, PM timer T\n") }, "console: \(printed())")
        for command in [["pause"], ["power-button"], ["snapshot", snap], ["stop"]] {
            let r = try ControlAPITests.ctl([socket] + command)
            #expect(r.status == 0, "\(command): \(r.stderr)")
        }
        #expect(vmm.wait().status == 0)
        let ran = PMTimerGuestTests.now() - started
        #expect(Self.masked(printed()).hasSuffix("acpi: waiting for the power button, PM timer T\n"), "the paused guest took the SCI: \(printed())")
        let stateFile = snap + "/device-launcher-devices.state"
        let saved = try String(contentsOfFile: stateFile, encoding: .utf8)
        #expect(saved.contains("\npm1-events 0x100 0x100\n"), "\(saved)")
        let waited = try #require(Self.count(after: waiting, in: printed()))
        let count = try #require(Self.count(after: "\npm-timer 0x", in: saved), "\(saved)")
        #expect((count &- waited) & 0xff_ffff <= PMTimerGuestTests.ticks(ran), "read \(waited), saved \(count) in \(ran) ns")

        // Half a wrap on, the manifest's size and checksum of the blob to match.
        let moved = (count &+ 0x80_0000) & 0xff_ffff
        let edited = Array(saved.replacingOccurrences(of: "\npm-timer 0x\(String(count, radix: 16))\n",
                                                      with: "\npm-timer 0x\(String(moved, radix: 16))\n").utf8)
        try Data(edited).write(to: URL(fileURLWithPath: stateFile))
        let manifest = try String(contentsOfFile: snap + "/manifest", encoding: .utf8).split(separator: "\n").map { line in
            guard line.hasPrefix("device launcher-devices ") else { return String(line) }
            let f = line.split(separator: " ")
            return (f[0..<4] + ["\(edited.count)", "0x" + String(edited.withUnsafeBytes(fnv1a64), radix: 16)]).joined(separator: " ")
        }
        try (manifest.joined(separator: "\n") + "\n").write(toFile: snap + "/manifest", atomically: false, encoding: .utf8)

        let restoring = PMTimerGuestTests.now()
        let restored = try PluginListingTests.run(["restore", snap, "--serial", "stdio", "--max-seconds", "60"], bound: 120)
        let restoreRan = PMTimerGuestTests.now() - restoring
        #expect(Self.masked(restored.stdout) == "acpi: SCI: PM1a status 00000100, after clearing 00000000, PM timer T\n")
        #expect(restored.stderr == "")
        #expect(restored.status == 0)
        let read = try #require(Self.count(after: "PM timer ", in: restored.stdout))
        #expect((read &- moved) & 0xff_ffff <= PMTimerGuestTests.ticks(restoreRan), "restored at \(moved), read \(read) in \(restoreRan) ns")
    }

    @Test("a guest that never enabled the button runs on after a press (as on QEMU); a stopped VM or a bad action is refused")
    func ignoredAndRefused() throws {
        let socket = ControlAPITests.socketPath("button")
        let vmm = try ControlAPITests.launch(socket)
        defer { vmm.kill() }
        #expect(eventually { (try? ControlAPITests.ctl([socket, "info"]).status) == 0 })
        #expect(try ControlAPITests.ctl([socket, "power-button"]).status == 0)
        let before = try ControlAPITests.ioExits(socket)
        #expect(try eventually { try ControlAPITests.ioExits(socket) > before + 100 })
        let body = #"{"action_type": "Reboot"}"#
        let bad = try RawHTTP.send(socket, "PUT /actions HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
        #expect(bad == (400, #"{"fault_message": "field 'action_type' must be \"Stop\", \"PowerButton\" or \"SendCtrlAltDel\", not \"Reboot\""}"#))
        #expect(try ControlAPITests.ctl([socket, "stop"]).status == 0)
        #expect(vmm.wait().status == 0)

        // A controller without a power button (a VMM that installed none): 501.
        let guest = try TestGuest("spin")
        let api = ControlAPI(VMController(vm: guest.vm))
        #expect(api.action(Array(#"{"action_type": "PowerButton"}"#.utf8))
            == .init(status: 501, body: #"{"fault_message": "this machine has no power button (no ACPI power management block)"}"#))
    }
}
