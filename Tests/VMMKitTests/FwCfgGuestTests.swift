import Foundation
import Testing

/// fw_cfg's DMA interface and `--fw-cfg` files as a kernel written for QEMU uses them
/// (Examples/GuestImages/qemu/fwcfg.S): the directory by DMA, a user's file read by
/// DMA, by the data port and both, and transfers a guest gets wrong; a file half-read
/// when a snapshot is taken reads on in a new process after its host file is gone; and
/// every bad `--fw-cfg` or `fwCfg` refused in one line. The device's rules one by one,
/// without a VM: `FwCfgTests`.
@Suite("fw_cfg DMA and --fw-cfg files on real KVM", .serialized, .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct FwCfgGuestTests {
    static let guest = VMMProcess.guest("fwcfg.elf")
    static let done: Int32 = (0x25 << 1) | 1
    static let greeting = "hello, from the host"

    static let head = """
        fw_cfg: interfaces 00000003
        fw_cfg: DMA signature QEMU CFG
        fw_cfg: files by DMA 00000003, control after 00000000
        fw_cfg: file 00000020 00000028 etc/e820
        fw_cfg: file 00000021 00000006 opt/vmmkit/data
        fw_cfg: file 00000022 00000014 opt/vmmkit/greeting
        fw_cfg: after skipping 7 bytes: from the host

        """

    static let tail = """
        fw_cfg: 5 bytes by port, 6 by DMA: hello, from
        fw_cfg: past the end zeros, the next byte untouched 00000001
        fw_cfg: a write's control 00000001
        fw_cfg: a buffer outside RAM, control 00000001
        fw_cfg: a buffer across RAM's end, control 00000001
        fw_cfg: a descriptor outside RAM answers nothing; done

        """

    func run(_ args: [String]) throws -> VMMProcess.Result { try PluginListingTests.run(args, bound: 120) }

    /// A scratch directory with the data file (6 bytes) and the greeting as a file.
    static func files(_ name: String) throws -> (dir: String, data: String, greeting: String) {
        let dir = try VMMProcess.scratch("fwcfg", name)
        let data = dir + "/data.bin", greeting = dir + "/greeting.txt"
        try Data([0, 1, 2, 0x0a, 0xfe, 0xff]).write(to: URL(fileURLWithPath: data))
        try Data(Self.greeting.utf8).write(to: URL(fileURLWithPath: greeting))
        return (dir, data, greeting)
    }

    @Test("a QEMU-style kernel lists the directory by DMA and reads a user's file by DMA and the data port from one offset; a string= item, a file= item and the config key give it the same bytes; errors reach it as the error bit")
    func guestReads() throws {
        let (dir, data, greeting) = try Self.files("reads")
        let config = dir + "/vm.json"
        try Data(#"{"image": "\#(Self.guest)", "maxSeconds": 60, "fwCfg": ["opt/vmmkit/data,file=\#(data)", "name=opt/vmmkit/greeting,file=\#(greeting)"]}"#.utf8)
            .write(to: URL(fileURLWithPath: config))
        let ways: [[String]] = [
            ["run", Self.guest, "--max-seconds", "60", "--fw-cfg", "opt/vmmkit/greeting,string=hello,, from the host", "--fw-cfg", "name=opt/vmmkit/data,file=\(data)"],
            ["run", Self.guest, "--max-seconds", "60", "--fw-cfg=opt/vmmkit/data,file=\(data)", "--fw-cfg", "opt/vmmkit/greeting,file=\(greeting)", "--vcpus", "2"],
            ["run", "--config", config],
        ]
        for args in ways {
            let r = try run(args)
            #expect(r.stdout == Self.head + Self.tail, "\(args)")
            #expect(r.stderr == "" && r.status == Self.done, "\(args): \(r.status) \(r.stderr)")
        }
        // Without the files the directory holds etc/e820 alone.
        let none = try run(["run", Self.guest, "--max-seconds", "60"])
        #expect(none.stdout.hasPrefix("fw_cfg: interfaces 00000003\n") && none.stdout.contains("fw_cfg: files by DMA 00000001, control after 00000000\nfw_cfg: file 00000020 00000028 etc/e820\n"), "\(none.stdout)")
        #expect(none.stdout.hasSuffix("fw_cfg: no opt/vmmkit/greeting\n") && none.status == (0x26 << 1) | 1)
        // --pvpanic adds QEMU's etc/pvpanic-port: the port, 0x505, 2 bytes.
        let panic = try run(["run", Self.guest, "--max-seconds", "60", "--pvpanic"])
        #expect(panic.stdout.contains("fw_cfg: files by DMA 00000002, control after 00000000\nfw_cfg: file 00000020 00000028 etc/e820\nfw_cfg: file 00000021 00000002 etc/pvpanic-port\n"), "\(panic.stdout)")
    }

    @Test("a file half-read when the snapshot is taken reads on after a restore in a new process, from the snapshot's copy: the host file is gone by then")
    func halfReadRestored() throws {
        let (dir, data, greeting) = try Self.files("snapshot")
        let snap = dir + "/snap"
        let (vmm, console, socket) = ControlAPITests.served(["run", Self.guest, "--append", "wait", "--fw-cfg", "opt/vmmkit/greeting,file=\(greeting)",
                                                             "--fw-cfg", "opt/vmmkit/data,file=\(data)"], in: dir)
        defer { vmm.kill() }
        // The guest has read "hello" through the data port and waits for a key.
        #expect(eventually { KeyboardTests.printed(console) == Self.head + "fw_cfg: waiting for a key\n" }, "console: \(KeyboardTests.printed(console))")
        try ControlAPITests.snapshotAndStop(vmm, socket, into: snap)
        let saved = try String(contentsOfFile: snap + "/device-launcher-devices.state", encoding: .utf8)
        #expect(saved.contains("\nfw_cfg 0x22 5\n"), "\(saved)")
        let files = try Data(contentsOf: URL(fileURLWithPath: snap + "/device-fw-cfg-files.state"))
        #expect(files == Data("vmm-fw-cfg-files 1\nfile opt/vmmkit/greeting 20\n\(Self.greeting)\nfile opt/vmmkit/data 6\n".utf8)
            + Data([0, 1, 2, 0x0a, 0xfe, 0xff]) + Data("\nend\n".utf8), "the files as given, in order")
        try FileManager.default.removeItem(atPath: greeting)
        try FileManager.default.removeItem(atPath: data)

        let socket2 = dir + "/api2.sock"
        let restored = Spawned(VMMProcess.binary, ["restore", snap, "--serial", "stdio", "--api-sock", socket2, "--max-seconds", "60"])
        defer { restored.kill() }
        #expect(eventually { FileManager.default.fileExists(atPath: socket2) })
        let key = try ControlAPITests.ctl([socket2, "sendkey", "a"])
        #expect(key.status == 0, "\(key.stderr)")
        let r = restored.wait()
        #expect(r.stdout == Self.tail)
        #expect(r.stderr == "")
        #expect(r.status == Self.done)
    }

    @Test("a bad --fw-cfg or fwCfg is refused before the VM is built: status 2, 4 or 6 and one line naming the flag or key and what is wrong")
    func refused() throws {
        let (dir, data, _) = try Self.files("refused")
        let big = dir + "/big.bin"
        #expect(FileManager.default.createFile(atPath: big, contents: nil))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: big))
        try handle.truncate(atOffset: 8 << 20 + 1) // sparse: 8 MiB and a byte
        try handle.close()
        let fifo = dir + "/fifo"
        #expect(mkfifo(fifo, 0o600) == 0)
        let flags: [([String], Int32, String)] = [
            (["--fw-cfg", "opt/a"], 2, "vmm: --fw-cfg 'opt/a': give exactly one of 'file' and 'string'\n"),
            (["--fw-cfg", "etc/e820,string=x"], 2, "vmm: --fw-cfg 'etc/e820,string=x': the name 'etc/e820' is the machine's own\n"),
            (["--fw-cfg", "opt/a,string=x", "--fw-cfg", "opt/a,file=\(data)"], 2, "vmm: --fw-cfg: the name 'opt/a' given twice\n"),
            (["--pvpanic", "--fw-cfg", "etc/pvpanic-port,string=x"], 2, "vmm: --fw-cfg etc/pvpanic-port: the name is the machine's own with pvpanic\n"),
            (["--fw-cfg", "opt/a,file=\(dir)/missing"], 6, "vmm: --fw-cfg opt/a: '\(dir)/missing': No such file or directory\n"),
            (["--fw-cfg", "opt/a,file=\(fifo)"], 6, "vmm: --fw-cfg opt/a: '\(fifo)': not a regular file (a FIFO)\n"),
            (["--fw-cfg", "opt/a,file=\(big)"], 6, "vmm: --fw-cfg opt/a: '\(big)': too large: 8388609 bytes (at most 8388608)\n"),
            (["--fw-cfg", "opt/a,file=\(data)", "--fw-cfg", "opt/b,file=\(big)"], 6, "vmm: --fw-cfg opt/b: '\(big)': too large: 8388609 bytes (at most 8388602)\n"),
        ]
        for (extra, status, message) in flags {
            let r = try run(["run", Self.guest, "--max-seconds", "60"] + extra)
            #expect(r.status == status && r.stderr == message && r.stdout == "", "\(extra): \(r.status) \(r.stderr)")
        }
        let configs: [(String, String)] = [
            (#""fwCfg": "opt/a,string=x""#, "'fwCfg' must be an array of strings \"[name=]NAME,file=PATH\" or \"[name=]NAME,string=TEXT\""),
            (#""fwCfg": [1]"#, "'fwCfg' must be an array of strings \"[name=]NAME,file=PATH\" or \"[name=]NAME,string=TEXT\""),
            (#""fwCfg": ["opt/a,string=x", "opt/b,gen_id=g"]"#, "'fwCfg' item 1: 'gen_id' is not supported (no objects generate fw_cfg data here)"),
            (#""fwCfg": ["opt/a,string=x", "opt/a,string=y"]"#, "'fwCfg': the name 'opt/a' given twice"),
        ]
        for (key, why) in configs {
            let config = dir + "/vm.json"
            try Data(#"{"image": "\#(Self.guest)", \#(key)}"#.utf8).write(to: URL(fileURLWithPath: config))
            let r = try run(["run", "--config", config])
            #expect(r.status == 4 && r.stderr == "vmm: \(config): \(why)\n", "\(key): \(r.status) \(r.stderr)")
        }
    }

    @Test("a QEMU-style kernel reads fw_cfg's x86 items: ACPI tables, SMBIOS entries and the legacy e820 table empty, IRQ 0 override 1 (as QEMU's pc, with or without the irqchip), and FW_CFG_HPET naming the HPET at 0xfed00000, or count 0xff without one (--no-hpet, --irqchip none)")
    func archItems() throws {
        let guest = VMMProcess.guest("fwcfgarch.elf")
        func console(count: String, id: String, address: String) -> String {
            """
            fw_cfg arch: acpi tables 00000000
            fw_cfg arch: smbios entries 00000000
            fw_cfg arch: irq0 override 00000001
            fw_cfg arch: e820 table 00000000
            fw_cfg arch: hpet count \(count)
            fw_cfg arch: hpet 0 block id \(id) address \(address) min tick 00000000 page prot 00000000
            fw_cfg arch: hpet entries 1-7 and past the end zero 00000001
            fw_cfg arch: count through 0xc004 \(count)
            fw_cfg arch: done

            """
        }
        let with = console(count: "00000001", id: "8086A201", address: "00000000FED00000")
        let without = console(count: "000000FF", id: "00000000", address: "0000000000000000")
        for (extra, expected) in [([String](), with), (["--no-hpet"], without), (["--irqchip", "none"], without)] {
            let r = try run(["run", guest, "--max-seconds", "60"] + extra)
            #expect(r.stdout == expected, "\(extra)")
            #expect(r.stderr == "" && r.status == (0x27 << 1) | 1, "\(extra): \(r.status) \(r.stderr)")
        }
    }
}
