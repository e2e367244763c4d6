import Foundation
import Testing

/// QEMU `pc`'s HPET as a kernel written for it uses it (Examples/GuestImages/qemu/hpet.S):
/// the capabilities, a running counter, one-shot, periodic (LegacyReplacement, which
/// holds the in-kernel PIT silent while it lasts) and level-triggered interrupts through
/// the in-kernel I/O APIC, and a periodic timer that
/// goes on after a snapshot and a restore in a new process. Where the ACPI table puts it
/// is `FirmwareTablesTests.guestUsesACPI`; its rules one by one are `HPETTests`.
@Suite("HPET on real KVM", .serialized, .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct HPETGuestTests {
    static let guest = VMMProcess.guest("hpet.elf")
    static let done: Int32 = (0x23 << 1) | 1

    static let head = """
        hpet: capabilities 8086A201, period (fs) 00989680
        hpet: timer 0 configuration 00000030, routes 00000004
        hpet: counter before enabling 00000000
        hpet: the counter runs
        hpet: one-shot interrupt on pin 2, counter at the comparator: 00000001
        hpet: interrupts on pin 2 while LegacyReplacement holds IRQ 0 and timer 2 counts: 00000001

        """

    static func tail(periodic: String) -> String {
        """
        hpet: periodic interrupts on IRQ 0 (pin 2): \(periodic), comparator moved on by whole periods: 00000001
        hpet: the PIT's after it lets IRQ 0 go: 00000001
        hpet: level interrupt, status 00000004, after writing it back 00000000
        hpet: halted, counter written 12345678

        """
    }

    func run(_ args: [String]) throws -> VMMProcess.Result { try PluginListingTests.run(args, bound: 120) }

    @Test("a QEMU-style kernel reads the HPET's capabilities, runs its counter and takes one-shot, periodic and level interrupts through the I/O APIC; LegacyReplacement silences the PIT while it holds IRQ 0; none without the irqchip, with --no-hpet, or where a plugin claims the block")
    func interrupts() throws {
        for extra in [[], ["--vcpus", "2"]] {
            let r = try run(["run", Self.guest, "--max-seconds", "60"] + extra)
            #expect(r.stdout == Self.head + Self.tail(periodic: "00000005"), "\(extra)")
            #expect(r.stderr == "", "\(extra)")
            #expect(r.status == Self.done, "\(extra)")
        }
        // Without the in-kernel irqchip the machine has no ACPI tables and no HPET: the
        // block is unassigned memory, which reads 0, as under QEMU.
        let none = try run(["run", Self.guest, "--irqchip", "none", "--max-seconds", "60"])
        #expect(none.stdout.hasPrefix("hpet: capabilities 00000000, period (fs) 00000000\n"), "\(none.stdout)")
        #expect(none.stdout.hasSuffix("hpet: the counter does not run\n"), "\(none.stdout)")
        // --no-hpet (config noHPET), QEMU's -machine hpet=off: no HPET, and no ACPI table
        // naming one (FirmwareTablesTests).
        let dir = try VMMProcess.scratch("hpet", "off")
        let config = dir + "/vm.json"
        try Data(#"{"image": "\#(Self.guest)", "noHPET": true, "maxSeconds": 60}"#.utf8).write(to: URL(fileURLWithPath: config))
        for args in [["run", Self.guest, "--no-hpet", "--max-seconds", "60"], ["run", "--config", config]] {
            let off = try run(args)
            #expect(off.stdout.hasPrefix("hpet: capabilities 00000000, period (fs) 00000000\n"), "\(args): \(off.stdout)")
            #expect(off.stdout.hasSuffix("hpet: the counter does not run\n") && off.stderr == "", "\(args): \(off.stderr)")
        }
        // A plugin that claims any of the block has it: the built-in HPET steps aside (the
        // scratch device's 64 bytes of registers read 0, the rest is unassigned).
        let displaced = try run(["run", Self.guest, "--plugin", "ScratchDevice,mmio=0xfed00000", "--max-seconds", "60"])
        #expect(displaced.stdout.hasPrefix("hpet: capabilities 00000000, period (fs) 00000000\n"), "\(displaced.stdout)")
        #expect(displaced.stdout.hasSuffix("hpet: the counter does not run\n") && displaced.stderr == "", "\(displaced.stderr)")
    }

    /// QEMU's pc wires the RTC's interrupt through the HPET (`hpet_handle_legacy_irq`):
    /// while LegacyReplacement holds IRQ 8 for timer 1 the RTC's interrupts do not reach
    /// it, and the level the RTC holds meanwhile is driven when the mode ends. Before, 16
    /// of the RTC's interrupts came in 250 ms of LegacyReplacement, and one the RTC had
    /// raised meanwhile was lost with the mode's end: no more came (the RTC waited for a
    /// read of register C that no interrupt asked for).
    @Test("the RTC's interrupt reaches IRQ 8 through the HPET: none while LegacyReplacement holds it, one raised meanwhile comes when the mode ends (the periodic ones after it), and none that register B disabled meanwhile")
    func rtcThroughLegacyReplacement() throws {
        let r = try run(["run", VMMProcess.guest("rtclegacy.elf"), "--max-seconds", "60"])
        #expect(r.status == (0x19 << 1) | 1, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n")
        #expect(lines.count == 4, "\(r.stdout)")
        guard lines.count == 4 else { return }
        #expect(lines[0] == "rtc: IRQ 8s while LegacyReplacement holds it: 00000000")
        #expect(lines[1] == "rtc: IRQ 8s after an interrupt raised while pin 8 was masked: 00000000")
        // 64 Hz for 250 ms: about 16; at least the one waiting when the mode ended.
        let prefix = "rtc: IRQ 8s once LegacyReplacement let it go: "
        let after = lines[2].hasPrefix(prefix) ? Int(lines[2].dropFirst(prefix.count), radix: 16) : nil
        #expect(after.map { $0 >= 1 } == true, "\(lines[2])")
        // An interrupt held back, then disabled before register C was read, never comes.
        #expect(lines[3] == "rtc: IRQ 8s after register B disabled the interrupt LegacyReplacement held back: 00000000")
    }

    /// The RTC's output held back by LegacyReplacement is the RTC's state (its register C
    /// flags, raised again on restore), not the HPET's: a restore in a new process with the
    /// mode still on delivers none of it, and its end delivers it.
    @Test("an RTC interrupt LegacyReplacement holds back survives a snapshot: restored in a new process, none comes while the mode lasts, and it comes when the mode ends")
    func rtcHeldAcrossSnapshot() throws {
        let dir = try VMMProcess.scratch("hpet", "rtcsnap")
        let snap = dir + "/snap"
        let (vmm, console, socket) = ControlAPITests.served(["run", VMMProcess.guest("rtclegacy.elf"), "--append", "snap"], in: dir)
        defer { vmm.kill() }
        #expect(eventually { KeyboardTests.printed(console) == "rtc: held\n" }, "console: \(KeyboardTests.printed(console))")
        try ControlAPITests.snapshotAndStop(vmm, socket, into: snap)
        #expect(KeyboardTests.printed(console) == "rtc: held\n", "the run went past the held phase before the pause")
        let restored = try run(["restore", snap, "--serial", "stdio", "--max-seconds", "60"])
        #expect(restored.status == (0x19 << 1) | 1, "\(restored.stderr)")
        let lines = restored.stdout.split(separator: "\n")
        #expect(lines.first == "rtc: IRQ 8s while LegacyReplacement holds it: 00000000", "\(restored.stdout)")
        let prefix = "rtc: IRQ 8s once LegacyReplacement let it go: "
        let after = lines.count == 2 && lines[1].hasPrefix(prefix) ? Int(lines[1].dropFirst(prefix.count), radix: 16) : nil
        #expect(after.map { $0 >= 1 } == true, "\(restored.stdout)")
    }

    @Test("a periodic timer survives a snapshot: restored in a new process, its interrupts go on until the guest has all it waits for")
    func periodicRestored() throws {
        let dir = try VMMProcess.scratch("hpet", "snapshot")
        let snap = dir + "/snap"
        let (vmm, console, socket) = ControlAPITests.served(["run", Self.guest, "--append", "slow"], in: dir)
        defer { vmm.kill() }
        // The periodic phase has begun once the PIT's line is out; it lasts until the power button.
        #expect(eventually { KeyboardTests.printed(console) == Self.head }, "console: \(KeyboardTests.printed(console))")
        try ControlAPITests.snapshotAndStop(vmm, socket, into: snap)
        #expect(KeyboardTests.printed(console) == Self.head, "the run ended before the periodic phase did")
        let saved = try String(contentsOfFile: snap + "/device-launcher-devices.state", encoding: .utf8)
        // Enabled, LegacyReplacement; timer 0 periodic, 32-bit, enabled, armed.
        let line = try #require(saved.split(separator: "\n").first { $0.hasPrefix("hpet ") }, "\(saved)")
        let words = line.split(separator: " ")
        #expect(words.count == 19 && words[1] == "0x3" && words[4] == "0x40000013c" && words[8] == "1", "\(line)")

        // Restored, the timer goes on: five more interrupts after the button end the phase.
        let restoredSocket = dir + "/restored.sock"
        let restoring = Spawned(VMMProcess.binary, ["restore", snap, "--serial", "file:\(dir)/restored.txt", "--api-sock", restoredSocket, "--max-seconds", "60"])
        defer { restoring.kill() }
        #expect(eventually { (try? ControlAPITests.ctl([restoredSocket, "info"]).status) == 0 }, "no API on \(restoredSocket)")
        #expect(try ControlAPITests.ctl([restoredSocket, "power-button"]).status == 0)
        let restored = restoring.wait()
        // Within 2^31 ticks of the button, as the guest measures by the counter: the
        // comparator the counter passed during the snapshot's hold waited for a 32-bit wrap (43 s).
        #expect(KeyboardTests.printed(dir + "/restored.txt") == Self.tail(periodic: "00000005")
                + "hpet: the five periodic interrupts after the power button came at once: 00000001\n")
        #expect(restored.stderr == "")
        #expect(restored.status == Self.done)
    }
}
