import Foundation
import Testing
@testable import VMMKit
import VMMSnapshot

/// `vmm run --snapshot-on-stop` and `vmm restore`, each in a process of its own, on the
/// counter guest (lines 0000..03ff on COM1, then debug-exit 5 = status 11).
@Suite("vmm snapshot and restore on real KVM", .serialized, .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct LauncherSnapshotTests {
    static let counter = VMMProcess.guest("counter.elf")
    static let fullOutput = (0..<0x400).map { String(format: "%04x\n", $0) }.joined()

    func tempDir(_ name: String) throws -> String {
        let dir = NSTemporaryDirectory() + "vmm-snap-\(getpid())-\(name)"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    func read(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "<missing \(path)>" }

    /// Every file of `dir` with its bytes: to show that a restore changed nothing.
    func contents(_ dir: String) throws -> [String: Data] {
        var all: [String: Data] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: dir) {
            all[name] = try Data(contentsOf: URL(fileURLWithPath: dir + "/" + name))
        }
        return all
    }

    /// Runs the counter until --max-seconds stops it and saves the snapshot into `dir/snap`.
    func snapshotMidRun(_ dir: String, extra: [String] = []) throws -> (before: String, snap: String) {
        let snap = dir + "/snap", out = dir + "/before.txt"
        let r = try VMMProcess.run(["run", Self.counter, "--serial", "file:\(out)", "--max-seconds", "0.5",
                                    "--snapshot-on-stop", snap] + extra)
        #expect(r.status == 22, "stderr: \(r.stderr)")
        #expect(r.stderr.hasPrefix("vmm: stopped after --max-seconds 0.5; snapshot saved to \(snap) ("))
        #expect(r.stderr.split(separator: "\n").count == 1)
        return (read(out), snap)
    }

    @Test("stopped mid-run and restored lazily and eagerly in new processes: the console continues the uninterrupted sequence, same status")
    func roundTrip() throws {
        let dir = try tempDir("roundtrip")
        let full = try VMMProcess.run(["run", Self.counter, "--serial", "file:\(dir)/full.txt"])
        #expect(full.status == 11)
        #expect(read(dir + "/full.txt") == Self.fullOutput)

        let (before, snap) = try snapshotMidRun(dir)
        #expect(before.count < Self.fullOutput.count, "the stop lands mid-run (the guest waits 2^32 TSC cycles half-way)")
        #expect(Self.fullOutput.hasPrefix(before))
        let saved = try contents(snap)

        let lazy = try VMMProcess.run(["restore", snap, "--serial", "file:\(dir)/lazy.txt"])
        #expect(lazy.status == 11, "stderr: \(lazy.stderr)")
        #expect(lazy.stderr == "")
        #expect(before + read(dir + "/lazy.txt") == Self.fullOutput)

        let eager = try VMMProcess.run(["restore", snap, "--eager", "--serial", "file:\(dir)/eager.txt", "--stats"])
        #expect(eager.status == lazy.status)
        #expect(read(dir + "/eager.txt") == read(dir + "/lazy.txt"))
        #expect(eager.stderr.contains("restore: 0 pages fetched from the snapshot"))
        // Lazy: the guest's code and stack pages come through userfaultfd, once each.
        let counted = try VMMProcess.run(["restore", snap, "--serial", "none", "--stats"])
        #expect(counted.status == 11)
        let fetched = counted.stderr.split(separator: "\n").first { $0.hasPrefix("restore: ") }
            .flatMap { Int($0.split(separator: " ")[1]) } ?? 0
        #expect(fetched > 0 && fetched <= 16, "stderr: \(counted.stderr)")
        #expect(try contents(snap) == saved, "a restore changes nothing on disk")
    }

    /// Selects fw_cfg's signature and reads its first byte, asks the i8042 for a self-test
    /// without reading the reply, writes 0x02 to the reset control (port 0xcf9) and 0x40
    /// to port 0x92; waits 2^32 TSC cycles (the stop lands here); then reads the
    /// signature's next byte ('E'), the i8042's reply (0x55), port 0x92 (0x40) and port
    /// 0xcf9 (0x02), and ends with debug-exit of their XOR (0x52: status 165). Any of the
    /// four lost reads differently.
    static let builtInDeviceProbe: [UInt8] = [
        0x66, 0xba, 0x10, 0x05, 0x31, 0xc0, 0x66, 0xef, 0x66, 0xff, 0xc2, 0xec,
        0xb0, 0xaa, 0xe6, 0x64, 0x66, 0xba, 0xf9, 0x0c, 0xb0, 0x02, 0xee,
        0xb0, 0x40, 0xe6, 0x92, 0x0f,
        0x31, 0x48, 0xc1, 0xe2, 0x20, 0x48, 0x09, 0xc2, 0x49, 0x89, 0xd0, 0x0f,
        0x31, 0x48, 0xc1, 0xe2, 0x20, 0x48, 0x09, 0xc2, 0x4c, 0x29, 0xc2, 0x48,
        0xc1, 0xea, 0x20, 0x74, 0xee, 0x66, 0xba, 0x11, 0x05, 0xec, 0x88, 0xc3,
        0xe4, 0x60, 0x30, 0xc3, 0xe4, 0x92, 0x30, 0xc3, 0x66, 0xba, 0xf9, 0x0c, 0xec, 0x30, 0xd8, 0xe6,
        0xf4, 0xf4,
    ]

    @Test("the launcher's own devices survive a snapshot: a fw_cfg read, an unread i8042 reply, ports 0x92 and 0xcf9 go on after the restore")
    func builtInDevicesRestored() throws {
        let dir = try tempDir("builtins")
        let probe = try VMMProcess.temp("builtins.bin", Self.builtInDeviceProbe)
        let whole = try VMMProcess.run(["run", probe, "--load-addr", "0x100000", "--max-seconds", "60"])
        #expect(whole.status == 165, "stderr: \(whole.stderr)")
        let snap = dir + "/snap"
        let r = try VMMProcess.run(["run", probe, "--load-addr", "0x100000", "--max-seconds", "0.5", "--snapshot-on-stop", snap])
        #expect(r.status == 22, "stderr: \(r.stderr)")
        let saved = read(snap + "/device-launcher-devices.state").split(separator: "\n", omittingEmptySubsequences: false)
        // PM1a control holds SCI_EN from reset: the FADT names no SMI command port. The VGA
        // registers as mode 3 leaves them.
        #expect(saved.filter { !$0.hasPrefix("rtc ") && !$0.hasPrefix("pm-timer ") } == ["vmm-launcher-devices 1", "fw_cfg 0x0 1", "reset-control 0x2",
                                                           "port92 0x40", "i8042 0x1c 0x61 0xcf 0x0 0x0 0x55", "ps2-keyboard 2 1 0x0 -", "pm1-control 0x1", "pm1-events 0x0 0x0",
                                                           "vga 0x67 0x0 0x0 5f4f50825581bf1f004f0d0e000000009c8e8f281f96b9a3ff", "end", ""])
        // The PM timer's count (24 bits; its value ACPIPowerButtonTests checks), the RTC:
        // index 0, no offset from the host clock, 128 bytes of CMOS memory.
        #expect(saved.contains { $0.hasPrefix("pm-timer 0x") && UInt32($0.dropFirst(11), radix: 16).map { $0 <= 0xff_ffff } == true })
        #expect(saved.contains { $0.hasPrefix("rtc 0x0 0 ") && $0.count == "rtc 0x0 0 ".count + 256 })
        let restored = try VMMProcess.run(["restore", snap])
        #expect(restored.status == 165, "stderr: \(restored.stderr)")
        #expect(restored.stderr == "")
    }

    /// Stopped at a tenth of a second, in the periodic phase (8 interrupts at 64 Hz take
    /// at least 109 ms) or before it, and restored: register B's interrupt enables come
    /// back with the RTC and its thread raises IRQ 8 again, so the guest finishes both
    /// phases in the new process, with the whole run's output.
    @Test("the RTC's interrupts go on after a restore: the guest stopped waiting for IRQ 8 gets it in the new process")
    func rtcInterruptsRestored() throws {
        let dir = try tempDir("rtcirq")
        let snap = dir + "/snap"
        let r = try VMMProcess.run(["run", VMMProcess.guest("rtc_irq.elf"), "--max-seconds", "0.1", "--snapshot-on-stop", snap])
        #expect(r.status == 22, "stderr: \(r.stderr)")
        let restored = try VMMProcess.run(["restore", snap, "--max-seconds", "30"])
        #expect(restored.status == (0x19 << 1) | 1, "stderr: \(restored.stderr)")
        #expect(r.stdout == "")
        #expect(restored.stdout == QEMUCompatTests.rtcInterruptOutput)
    }

    @Test("a truncated snapshot file is refused in one line with status 24, and nothing changes on disk")
    func truncated() throws {
        let dir = try tempDir("truncated")
        let (_, snap) = try snapshotMidRun(dir)
        let file = snap + "/vcpu0.state"
        let size = try #require(try FileManager.default.attributesOfItem(atPath: file)[.size] as? Int)
        #expect(truncate(file, off_t(size - 1)) == 0)
        let damaged = try contents(snap)
        let r = try VMMProcess.run(["restore", snap, "--serial", "none"])
        #expect(r.status == 24)
        #expect(r.stderr.hasPrefix("vmm: cannot restore: "))
        #expect(r.stderr.contains("vcpu0.state"))
        #expect(r.stderr.split(separator: "\n").count == 1)
        #expect(try contents(snap) == damaged)
    }

    @Test("a memory file damaged after the snapshot: vmm restore --eager refuses it (24), a lazy restore stops at the page (14), each naming the page")
    func damagedMemory() throws {
        let dir = try tempDir("damaged-memory")
        let (_, snap) = try snapshotMidRun(dir)
        // One bit in every page that held data (memory.sums says which).
        let pages = try SnapshotMemorySumsTests.flipBitOfDataPages(snap)
        #expect(!pages.isEmpty)
        let damaged = try contents(snap)
        let eager = try VMMProcess.run(["restore", snap, "--eager", "--serial", "none"])
        #expect(eager.status == 24)
        #expect(eager.stderr.hasPrefix("vmm: cannot restore: "), "\(eager.stderr)")
        #expect(eager.stderr.contains("memory.bin: the page at byte 0x\(String(pages[0] * 4096, radix: 16)) does not match memory.sums"), "\(eager.stderr)")
        #expect(eager.stderr.split(separator: "\n").count == 1)
        let lazy = try VMMProcess.run(["restore", snap, "--serial", "none"])
        #expect(lazy.status == 14, "\(lazy.stderr)")
        #expect(lazy.stderr.contains(" does not match memory.sums: the memory file was damaged or changed after the snapshot was written"), "\(lazy.stderr)")
        #expect(lazy.stderr.split(separator: "\n").count == 1, "\(lazy.stderr)")
        #expect(try contents(snap) == damaged)
    }

    @Test("a plugin the snapshot was taken with and that cannot be found any more: one line naming it, status 8")
    func missingPlugin() throws {
        let dir = try tempDir("missing-plugin")
        let copy = dir + "/libDebugExitCopy.so"
        try FileManager.default.copyItem(atPath: PluginFixtures.plugins + "/libDebugExit.so", toPath: copy)
        let (_, snap) = try snapshotMidRun(dir, extra: ["--plugin", "\(copy),port=0x80"])
        try FileManager.default.removeItem(atPath: copy)
        let saved = try contents(snap)
        let r = try VMMProcess.run(["restore", snap, "--trust-snapshot", "--serial", "none"])
        #expect(r.status == 8)
        #expect(r.stderr.contains(copy))
        #expect(r.stderr.split(separator: "\n").count == 1)
        #expect(try contents(snap) == saved)
    }

    @Test("a snapshot naming a plugin config and a console file is restored only with --trust-snapshot: refused in one line (status 24), nothing loaded or written")
    func untrustedHostPaths() throws {
        let dir = try tempDir("trust")
        let com2 = dir + "/com2.txt", out = dir + "/before.txt"
        // A second UART whose config names a file it creates at init.
        let (before, snap) = try snapshotMidRun(dir, extra: ["--plugin", "UART,port=0x2f8,output=file:\(com2)"])
        #expect(FileManager.default.fileExists(atPath: com2))
        try FileManager.default.removeItem(atPath: com2)
        let saved = try contents(snap)

        let plugin = try VMMProcess.run(["restore", snap, "--serial", "none"])
        #expect(plugin.status == 24)
        #expect(plugin.stderr == "vmm: cannot restore \(snap): its launcher state names the plugin \("UART,port=0x2f8,output=file:\(com2)".quotedForMessage); restore loads or opens what a snapshot names only with --trust-snapshot (a snapshot from elsewhere could name any library or file)\n")
        #expect(!FileManager.default.fileExists(atPath: com2), "the plugin was not loaded")

        let console = try VMMProcess.run(["restore", snap])
        #expect(console.status == 24)
        #expect(console.stderr.contains("names the console file \("file:\(out)".quotedForMessage)"), "stderr: \(console.stderr)")
        #expect(console.stderr.split(separator: "\n").count == 1)
        #expect(read(out) == before, "the console file was not opened (it would be truncated)")

        let trusted = try VMMProcess.run(["restore", snap, "--trust-snapshot", "--serial", "file:\(dir)/after.txt"])
        #expect(trusted.status == 11, "stderr: \(trusted.stderr)")
        #expect(before + read(dir + "/after.txt") == Self.fullOutput)
        #expect(FileManager.default.fileExists(atPath: com2))
        #expect(try contents(snap) == saved)
    }

    @Test("a loaded plugin without the state extension: the snapshot is refused naming it (status 24), no directory left")
    func pluginWithoutState() throws {
        let dir = try tempDir("stateless")
        let snap = dir + "/snap"
        let r = try VMMProcess.run(["run", Self.counter, "--serial", "none", "--max-seconds", "0.3", "--snapshot-on-stop", snap,
                                    "--plugin", PluginFixtures.fixture("Null") + ",port=0x80"])
        #expect(r.status == 24)
        #expect(r.stderr.contains("org.vmmkit.bench.null"))
        #expect(r.stderr.contains("org.vmmkit.plugin.state/1"))
        #expect(!FileManager.default.fileExists(atPath: snap))
    }
}

@Suite("plugin state extension (ABI 1.2) with real plugins", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct PluginStateTests {
    @Test("DebugExit and PCIHost save their state; a restore checks plugin, version and contents")
    func saveRestore() throws {
        let (guest, host) = try PluginFixtures.guest("pio_out")
        defer { host.close(); withExtendedLifetime(guest) {} }
        try host.load(PluginFixtures.plugins + "/libDebugExit.so", config: "port=0x80")
        try host.load(PluginFixtures.plugins + "/libPCIHost.so")
        let saved = try host.saveStates()
        #expect(saved.map(\.name) == ["plugin0.org.vmmkit.debug-exit", "plugin1.org.vmmkit.pci-host"])
        #expect(saved.map(\.bytes.count) == [16, 4 + 4 * 256])
        try host.restoreStates(saved)

        // A blob of other devices: PCIHost's read-only bytes are not these functions'.
        var otherDevice = saved
        otherDevice[1].bytes[4] = 0x86 + 1 // the vendor id's low byte
        let device = pluginError { () throws(PluginError) in try host.restoreStates(otherDevice) }
        #expect(device?.plugin == "org.vmmkit.pci-host")
        #expect(device?.message == "refused its saved state: pci-host: configuration byte 0x00 of 00:00.0 is 0x87, but its read-only bits (mask 0xff) are 0x86 on this machine")
        var otherIDE = saved
        otherIDE[1].bytes[4 + 2 * 256 + 0x09] = 0x80 // QEMU's programming interface: a bus master
        let ide = pluginError { () throws(PluginError) in try host.restoreStates(otherIDE) }
        #expect(ide?.message == "refused its saved state: pci-host: configuration byte 0x09 of 00:01.1 is 0x80, but its read-only bits (mask 0xff) are 0x00 on this machine")
        var version2 = saved
        version2[1].version = 2
        version2[1].bytes = Array(saved[1].bytes[0..<772]) // PIIX3's functions, as before 00:02.0
        let old = pluginError { () throws(PluginError) in try host.restoreStates(version2) }
        #expect(old?.message == "the snapshot holds state version 2; this plugin reads version 3")

        // With vga=std, 00:02.0 is QEMU's standard VGA: a machine without it is another machine.
        let (guest3, vga) = try PluginFixtures.guest("pio_out")
        defer { vga.close(); withExtendedLifetime(guest3) {} }
        try vga.load(PluginFixtures.plugins + "/libDebugExit.so", config: "port=0x80")
        try vga.load(PluginFixtures.plugins + "/libPCIHost.so", config: "vga=std")
        let noVGA = pluginError { () throws(PluginError) in try vga.restoreStates(saved) }
        #expect(noVGA?.message == "refused its saved state: pci-host: configuration byte 0x00 of 00:02.0 is 0x00, but its read-only bits (mask 0xff) are 0x34 on this machine")
        var withVGA = try vga.saveStates()
        #expect(Array(withVGA[1].bytes[(4 + 3 * 256)..<(4 + 3 * 256 + 4)]) == [0x34, 0x12, 0x11, 0x11])
        try vga.restoreStates(withVGA)
        withVGA[1].bytes[4 + 3 * 256 + 0x13] = 0xe0 // BAR 0 moved: the framebuffer cannot
        let moved = pluginError { () throws(PluginError) in try vga.restoreStates(withVGA) }
        #expect(moved?.message == "refused its saved state: pci-host: BAR 0 of 00:02.0 is at 0xe0000000; the framebuffer is at 0xfd000000")
        let badConfig = pluginError { () throws(PluginError) in _ = try vga.load(PluginFixtures.plugins + "/libPCIHost.so", config: "vga=cirrus") }
        #expect(badConfig?.message.contains("pci-host: the only config is vga=std (the standard VGA at 00:02.0)") == true, "\(String(describing: badConfig))")

        var wrongVersion = saved
        wrongVersion[1].version = 7
        let v = pluginError { () throws(PluginError) in try host.restoreStates(wrongVersion) }
        #expect(v?.plugin == "org.vmmkit.pci-host")
        #expect(v?.message.contains("version 7") == true)

        let missing = pluginError { () throws(PluginError) in try host.restoreStates([saved[0]]) }
        #expect(missing?.plugin == "org.vmmkit.pci-host")
        #expect(missing?.message.contains("no state") == true)

        // A blob of a debug-exit at another port does not fit this one.
        let (guest2, other) = try PluginFixtures.guest("pio_out")
        defer { other.close(); withExtendedLifetime(guest2) {} }
        try other.load(PluginFixtures.plugins + "/libDebugExit.so", config: "port=0x81")
        try other.load(PluginFixtures.plugins + "/libPCIHost.so")
        let refused = pluginError { () throws(PluginError) in try other.restoreStates(saved) }
        #expect(refused?.plugin == "org.vmmkit.debug-exit")
        // The line the plugin logs at error level during restore is the reason given.
        #expect(refused?.message == "refused its saved state: debug-exit: the state is of a debug-exit at port 0x80; this one is at port 0x81")
    }

    @Test("PCTestDev's scratch register and MMIO scratch survive a save and a restore into another VM; a blob of another size is refused")
    func testDeviceState() throws {
        let (writer, host) = try PluginFixtures.guest("plugin_testdev_state")
        defer { host.close(); withExtendedLifetime(writer) {} }
        try host.load(PluginFixtures.plugins + "/libPCTestDev.so")
        #expect(try writer.run() == .halted) // r12 = 0: the guest writes both
        let saved = try host.saveStates()
        #expect(saved.map(\.name) == ["plugin0.org.vmmkit.pc-testdev"])
        #expect(saved.map(\.bytes.count) == [4 + 65536])

        func readBack(_ states: [DeviceState]?) throws -> [UInt64] {
            let (reader, other) = try PluginFixtures.guest("plugin_testdev_state")
            defer { other.close(); withExtendedLifetime(reader) {} }
            try other.load(PluginFixtures.plugins + "/libPCTestDev.so")
            if let states { try other.restoreStates(states) }
            var regs = try reader.vcpu.registers()
            regs.r12 = 1
            try reader.vcpu.setRegisters(regs)
            #expect(try reader.run() == .halted)
            let m = reader.vm.memory
            return [try m.read(TestGuest.scratch, as: UInt64.self), try m.read(TestGuest.scratch + 8, as: UInt64.self)]
        }
        #expect(try readBack(saved) == [0x1234_5678, 0x1122_3344_5566_7788])
        #expect(try readBack(nil) == [0, 0]) // a fresh device: what the restore brought is not a default

        var short = saved
        short[0].bytes.removeLast()
        let refused = pluginError { () throws(PluginError) in try host.restoreStates(short) }
        #expect(refused?.plugin == "org.vmmkit.pc-testdev")
        #expect(refused?.message == "refused its saved state: pc-testdev: a state of 65539 bytes; version 1 has 65540")
    }

    @Test("ScratchDevice (Swift, through the SDK's PluginStateful) saves the registers a guest wrote, restores them into another VM, and a refusal gives its thrown text")
    func swiftPluginState() throws {
        let (guest, host) = try PluginFixtures.guest("plugin_scratch")
        defer { host.close(); withExtendedLifetime(guest) {} }
        try host.load("ScratchDevice")
        #expect(try guest.run() == .halted)
        let saved = try host.saveStates()
        #expect(saved.map(\.name) == ["plugin0.org.vmmkit.scratch-device"])
        // Registers 0-3 as the guest left them (plugin_scratch in Examples/Guests/plugin_exits.S).
        #expect(saved.first?.bytes.prefix(16) == [0x44, 0x33, 0x22, 0x11, 0x55, 0, 0, 0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88])

        let (other, restored) = try PluginFixtures.guest("hlt")
        defer { restored.close(); withExtendedLifetime(other) {} }
        try restored.load("ScratchDevice")
        try restored.restoreStates(saved)
        #expect(try restored.saveStates() == saved)

        var short = saved
        short[0].bytes.removeLast()
        let refused = pluginError { () throws(PluginError) in try restored.restoreStates(short) }
        #expect(refused?.message == "refused its saved state: org.vmmkit.scratch-device: a state of 63 bytes; version 1 has 64")
        #expect(try restored.saveStates() == saved, "a refused blob changes nothing")
    }

    @Test("MemoryFault refuses the state of an instance configured otherwise, saying which configuration it holds")
    func memoryFaultConfigurationState() throws {
        let (guest, host) = try PluginFixtures.guest("hlt")
        defer { host.close(); withExtendedLifetime(guest) {} }
        try host.load("MemoryFault", config: "fill=zero,priority=3")
        let saved = try host.saveStates()
        let (other, elsewhere) = try PluginFixtures.guest("hlt")
        defer { elsewhere.close(); withExtendedLifetime(other) {} }
        try elsewhere.load("MemoryFault", config: "fill=zero")
        let e = pluginError { () throws(PluginError) in try elsewhere.restoreStates(saved) }
        #expect(e?.plugin == "org.vmmkit.memory-fault")
        #expect(e?.message == "refused its saved state: the state is of an instance configured otherwise (base 0x0, size 0xffffffffffffffff, priority 3, fill=zero on); restore it with the configuration it was saved with")
    }

    @Test("a plugin without the extension: saveStates refuses naming it")
    func stateless() throws {
        let (guest, host) = try PluginFixtures.guest("pio_out")
        defer { host.close(); withExtendedLifetime(guest) {} }
        try host.load(PluginFixtures.fixture("Null"), config: "port=0x80")
        let e = pluginError { () throws(PluginError) in _ = try host.saveStates() }
        #expect(e?.plugin == "org.vmmkit.bench.null")
        #expect(e?.message.contains("org.vmmkit.plugin.state/1") == true)
    }
}
