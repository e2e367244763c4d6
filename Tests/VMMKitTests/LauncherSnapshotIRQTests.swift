import Foundation
import Testing

/// An interrupt the guest has taken but not yet acknowledged at its device when the
/// snapshot is taken (Examples/GuestImages/qemu/irqonce.S: the handler waits for the power
/// button before it reads RTC register C, port 0x60 or the disk's status). KVM's I/O APIC
/// keeps no line levels across KVM_SET_IRQCHIP, so a restore that raised the device's line
/// again made a second edge: the restored guest took the interrupt twice (and read the
/// keyboard's byte twice), where an uninterrupted run takes it once. A prober's finding.
@Suite("vmm restore: an interrupt taken before the snapshot is not taken again", .serialized,
       .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct LauncherSnapshotIRQTests {
    static let guest = VMMProcess.guest("irqonce.elf")
    static let done: Int32 = (0x27 << 1) | 1
    static let waiting = "irq: waiting for the power button\n"

    /// `args` run with a control socket and a console file, the power button pressed once
    /// the guest waits for it (`waitForMarker`) or once the API answers; the status and console.
    static func pressed(_ args: [String], _ dir: String, _ name: String, waitForMarker: Bool) throws -> (VMMProcess.Result, String) {
        let socket = dir + "/\(name).sock", console = dir + "/\(name).txt"
        let vmm = Spawned(VMMProcess.binary, args + ["--serial", "file:\(console)", "--api-sock", socket, "--max-seconds", "120"])
        defer { vmm.kill() }
        if waitForMarker {
            #expect(eventually { KeyboardTests.printed(console) == waiting }, "console: \(KeyboardTests.printed(console))")
        } else {
            #expect(eventually { (try? ControlAPITests.ctl([socket, "info"]).status) == 0 }, "no API on \(socket)")
        }
        #expect(try ControlAPITests.ctl([socket, "power-button"]).status == 0)
        return (vmm.wait(), KeyboardTests.printed(console))
    }

    @Test("RTC (IRQ 8), i8042 (IRQ 1), disk (IRQ 14): the handler waiting to acknowledge when the snapshot is taken; the restored guest counts one interrupt, as an uninterrupted run does",
          arguments: ["rtc8", "kbd1", "ata0"])
    func oneInterrupt(device: String) throws {
        let dir = try VMMProcess.scratch("irqonce", device)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let disk = dir + "/disk.img"
        #expect(FileManager.default.createFile(atPath: disk, contents: Data(count: 1 << 20)))
        let run = ["run", Self.guest, "--append", device] + (device == "ata0" ? ["--hda", disk] : [])

        let (whole, wholeConsole) = try Self.pressed(run, dir, "whole", waitForMarker: true)
        #expect(whole.status == Self.done, "\(whole.stderr)")
        #expect(wholeConsole == Self.waiting + "interrupts: 00000001\n")

        // The same guest paused while it waits, saved, stopped; restored in a new process.
        let socket = dir + "/saved.sock", console = dir + "/saved.txt", snap = dir + "/snap"
        let vmm = Spawned(VMMProcess.binary, run + ["--serial", "file:\(console)", "--api-sock", socket, "--max-seconds", "120"])
        defer { vmm.kill() }
        #expect(eventually { KeyboardTests.printed(console) == Self.waiting }, "console: \(KeyboardTests.printed(console))")
        #expect(try ControlAPITests.ctl([socket, "pause"]).status == 0)
        let saved = try ControlAPITests.ctl([socket, "snapshot", snap])
        #expect(saved.status == 0, "\(saved.stdout)\(saved.stderr)")
        #expect(try ControlAPITests.ctl([socket, "stop"]).status == 0)
        #expect(vmm.wait().status == 0)

        let (restored, restoredConsole) = try Self.pressed(["restore", snap] + (device == "ata0" ? ["--hda", disk] : []), dir, "restored", waitForMarker: false)
        #expect(restored.status == Self.done, "\(restored.stderr)")
        #expect(restoredConsole == "interrupts: 00000001\n", "the interrupt taken again after the restore")
    }
}
