import Foundation
import Testing

/// Runs the built `vmm` launcher as a user would and checks console output, stderr and status.
enum VMMProcess {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let binary = root.appendingPathComponent(".build/debug/vmm").path
    static func guest(_ name: String) -> String { root.appendingPathComponent(".build/guests/\(name)").path }

    struct Result {
        let status: Int32; let stdout: String; let stderr: String
        /// The signal that ended the process, if one did (then `status` is its number).
        var signal: Int32? = nil
    }

    /// `environment`: variables set for the child on top of the test process's own.
    static func run(binary: String = binary, _ args: [String], environment: [String: String] = [:]) throws -> Result {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = args
        if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        p.currentDirectoryURL = root
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = FileHandle.nullDevice
        try p.run()
        // Both pipes drained at once: a child filling one while the other is read to its
        // end would block on its write forever (a 64 KiB error line did).
        nonisolated(unsafe) var e = Data()
        let drained = DispatchGroup()
        DispatchQueue.global().async(group: drained) { e = err.fileHandleForReading.readDataToEndOfFile() }
        let o = out.fileHandleForReading.readDataToEndOfFile()
        drained.wait()
        p.waitUntilExit()
        return Result(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self),
                      signal: p.terminationReason == .uncaughtSignal ? p.terminationStatus : nil)
    }

    /// A new empty directory for one test (`suite` and `name` keep tests apart).
    static func scratch(_ suite: String, _ name: String) throws -> String {
        let dir = NSTemporaryDirectory() + "vmm-\(suite)-\(getpid())-\(name)"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    static func temp(_ name: String, _ bytes: [UInt8]) throws -> String {
        let path = NSTemporaryDirectory() + "vmm-test-\(getpid())-\(name)"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }
}

@Suite("vmm launcher on real KVM", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct LauncherTests {
    @Test("an ELF64 guest prints on COM1 and its debug-exit code 0 gives status 1")
    func elf64() throws {
        let r = try VMMProcess.run(["run", VMMProcess.guest("hello64.elf")])
        #expect(r.stdout == "Hello from an ELF64 guest\n")
        #expect(r.status == 1)
        #expect(r.stderr == "")
    }

    @Test("vmm run needs no ArgumentParser: FoundationEssentials comes only with libVMMCommandLine.so, loaded for help")
    func commandLineLibrary() throws {
        // LD_DEBUG=files: the dynamic linker names each library and who needed or loaded it.
        let run = try VMMProcess.run(["run", VMMProcess.guest("hello64.elf")], environment: ["LD_DEBUG": "files"])
        #expect(run.stdout == "Hello from an ELF64 guest\n")
        #expect(run.status == 1)
        let foundation = run.stderr.split(separator: "\n").filter { $0.contains("file=libFoundationEssentials.so") && $0.contains("needed by") }
        #expect(foundation.allSatisfy { $0.contains("libVMMCommandLine.so") }, "\(foundation)")
        let help = try VMMProcess.run(["--help"], environment: ["LD_DEBUG": "files"])
        #expect(help.status == 0)
        #expect(help.stdout.contains("USAGE: vmm <subcommand>"))
        #expect(help.stderr.split(separator: "\n").contains {
            $0.contains("libVMMCommandLine.so") && $0.contains("dynamically loaded by")
        })
    }

    @Test("a Multiboot guest sees its command line, its module and fw_cfg's CPU count and RAM size")
    func multiboot() throws {
        let module = try VMMProcess.temp("module.txt", Array("module contents\n".utf8))
        let image = VMMProcess.guest("multiboot.elf")
        let r = try VMMProcess.run(["run", image, "--append", "console=ttyS0 quiet", "--initrd", module, "--memory", "48M"])
        #expect(r.stdout == "cmdline: \(image) console=ttyS0 quiet\nmodule \(module): module contents\ncpus: 1\nram: 48 MiB\n")
        #expect(r.status == (0x10 << 1) | 1)
    }

    @Test("SMP: the BSP starts the APs with INIT/SIPI and counts them", arguments: [2, 3])
    func smp(vcpus: Int) throws {
        let r = try VMMProcess.run(["run", VMMProcess.guest("smp.elf"), "--vcpus", "\(vcpus)"])
        #expect(r.stdout == "smp: \(vcpus)\n")
        #expect(r.status == (0x20 << 1) | 1)
    }

    @Test("a config file and the same flags give the same result; flags override the file")
    func configFile() throws {
        let module = try VMMProcess.temp("mod2.txt", Array("M".utf8))
        let image = VMMProcess.guest("multiboot.elf")
        let config = try VMMProcess.temp("config.json", Array("""
            {"image": "\(image)", "memory": "40M", "append": "from-config", "initrd": "\(module)", "serial": "stdio"}
            """.utf8))
        let viaFile = try VMMProcess.run(["run", "--config", config])
        let viaFlags = try VMMProcess.run(["run", image, "--memory", "40M", "--append", "from-config", "--initrd", module])
        #expect(viaFile.stdout == viaFlags.stdout && viaFile.status == viaFlags.status)
        #expect(viaFile.stdout.contains("ram: 40 MiB"))
        let overridden = try VMMProcess.run(["run", "--config", config, "--memory", "24M"])
        #expect(overridden.stdout.contains("ram: 24 MiB"))
    }

    @Test("--trace exits prints one line per exit; --stats a table; --serial file: writes the console there")
    func traceStatsSerial() throws {
        let out = NSTemporaryDirectory() + "vmm-test-\(getpid())-console.txt"
        let r = try VMMProcess.run(["run", VMMProcess.guest("hello64.elf"), "--trace", "exits", "--stats", "--serial", "file:\(out)"])
        #expect(r.stdout == "")
        #expect(try String(contentsOfFile: out, encoding: .utf8) == "Hello from an ELF64 guest\n")
        #expect(r.stderr.contains("exit vcpu0 io out port=0x3f8 size=1 count=1 data=0x48 by org.vmmkit.uart16550 '"))
        #expect(r.stderr.contains("io                  27"))
        #expect(r.status == 1)
    }

    @Test("flat binaries: 64-bit triple fault is status 10; a timeout is 16; an unclaimed port is 18")
    func flatAndStatuses() throws {
        let ud2 = try VMMProcess.temp("ud2.bin", [0x0f, 0x0b])
        let r1 = try VMMProcess.run(["run", ud2, "--load-addr", "0x100000"])
        #expect(r1.status == 10)
        #expect(r1.stderr == "vmm: vCPU 0: shutdown (triple fault)\n")
        let spin = try VMMProcess.temp("spin.bin", [0xeb, 0xfe])
        let r2 = try VMMProcess.run(["run", spin, "--load-addr", "0x100000", "--max-seconds", "0.2"])
        #expect(r2.status == 16)
        #expect(r2.stderr == "vmm: stopped after --max-seconds 0.2\n")
        let real = try VMMProcess.temp("real.bin", Payload.bytes("real_hello"))
        let r3 = try VMMProcess.run(["run", real, "--load-addr", "0x7c00", "--mode", "16", "--strict-io"])
        #expect(r3.status == 18)
        #expect(r3.stderr == "vmm: vCPU 0: unhandled PIO write of 0x48 (1 byte x1) at port 0x10, vCPU 0 at RIP 0x6\n")
    }

    @Test("bad input: each gets its documented status and one line naming the problem")
    func badInput() throws {
        let missing = try VMMProcess.run(["run", "/nonexistent/guest.elf"])
        #expect(missing.status == 6)
        #expect(missing.stderr == "vmm: /nonexistent/guest.elf: cannot read image: No such file or directory\n")

        let whole = try [UInt8](Data(contentsOf: URL(fileURLWithPath: VMMProcess.guest("hello64.elf"))))
        let truncated = try VMMProcess.temp("trunc.elf", Array(whole.prefix(100)))
        let t = try VMMProcess.run(["run", truncated])
        #expect(t.status == 6)
        #expect(t.stderr.hasPrefix("vmm: \(truncated): truncated: the program headers need bytes up to"))

        var far = whole // move the first PT_LOAD's p_paddr to 256 MiB
        let phoff = Int(far[32]) | Int(far[33]) << 8
        far[phoff + 24 + 3] = 0x10
        let outside = try VMMProcess.temp("far.elf", far)
        let o = try VMMProcess.run(["run", outside, "--memory", "64M"])
        #expect(o.status == 6)
        #expect(o.stderr.contains("lies outside guest RAM [0x0..<0x4000000] (64 MiB)"))

        // A command line or module for an image that is not Multiboot was dropped in silence.
        let hello = VMMProcess.guest("hello64.elf")
        let append = try VMMProcess.run(["run", hello, "--append", "console=ttyS0"])
        #expect(append.status == 2)
        #expect(append.stderr == "vmm: \(hello): a command line (append) is passed to Multiboot, PVH and Linux images only, and this is an ELF64 image\n")
        let moduleConfig = try VMMProcess.temp("initrd-elf.json", Array(#"{"image": "\#(hello)", "initrd": "\#(hello)"}"#.utf8))
        let initrd = try VMMProcess.run(["run", "--config", moduleConfig])
        #expect(initrd.status == 4)
        #expect(initrd.stderr == "vmm: \(moduleConfig): \(hello): a module (initrd) is passed to Multiboot, PVH and Linux images only, and this is an ELF64 image\n")
        let flat = try VMMProcess.temp("hlt.bin", [0xf4])
        let flatAppend = try VMMProcess.run(["run", flat, "--load-addr", "0x100000", "--append", "x"])
        #expect(flatAppend.status == 2)
        #expect(flatAppend.stderr.hasSuffix("a command line (append) is passed to Multiboot, PVH and Linux images only, and this is a flat binary\n"))

        let unknown = try VMMProcess.run(["run", "--frobnicate", VMMProcess.guest("hello64.elf")])
        #expect(unknown.status == 2)
        #expect(unknown.stderr == "vmm: Error: Unknown option '--frobnicate'\n")

        let malformed = try VMMProcess.temp("bad.json", Array("{\"memory\": ".utf8))
        let m = try VMMProcess.run(["run", "--config", malformed])
        #expect(m.status == 4)
        #expect(m.stderr.hasPrefix("vmm: \(malformed): malformed JSON"))

        let typo = try VMMProcess.temp("typo.json", Array("{\"memroy\": \"64M\"}".utf8))
        let k = try VMMProcess.run(["run", "--config", typo])
        #expect(k.status == 4)
        #expect(k.stderr.hasPrefix("vmm: \(typo): unknown key 'memroy'"))

        let vcpus = try VMMProcess.temp("vcpus.json", Array("{\"vcpus\": true}".utf8))
        let v = try VMMProcess.run(["run", "--config", vcpus, VMMProcess.guest("hello64.elf")])
        #expect(v.status == 4)
        #expect(v.stderr == "vmm: \(vcpus): 'vcpus' must be an integer from 1 to 255\n")
    }

    @Test("plugins: a handler's failure is status 8 with the plugin's message and path; a bad plugin is refused by name")
    func pluginFailures() throws {
        let fixtures = VMMProcess.root.appendingPathComponent(".build/plugins/fixtures").path
        let guest = try VMMProcess.temp("cfail.bin", [0x66, 0xba, 0x30, 0x05, 0xb0, 0x07, 0xee, 0xf4]) // out 7 -> 0x530; hlt
        let r = try VMMProcess.run(["run", guest, "--load-addr", "0x100000", "--plugin", "\(fixtures)/libC_FAIL.so"])
        #expect(r.status == 8)
        #expect(r.stderr == "vmm: vCPU 0: handler failed: org.vmmkit.test.fixture 'fail-port' (\(fixtures)/libC_FAIL.so): c-fixture: refused value 7\n")
        let initFails = try VMMProcess.run(["run", guest, "--load-addr", "0x100000", "--plugin", "\(fixtures)/libINIT_FAILS.so,disk=none"])
        #expect(initFails.status == 8)
        #expect(initFails.stderr.hasPrefix("vmm: plugin 'org.vmmkit.test.fixture' (\(fixtures)/libINIT_FAILS.so): init failed:"))
        // A plugin's message holding a newline and escape sequences is printed on one line, escaped.
        let echo = try VMMProcess.run(["run", guest, "--load-addr", "0x100000", "--plugin",
                                       "\(fixtures)/libINIT_FAILS.so,echo=a\nFAKE: ok\u{1b}[2J\u{1b}]0;t\u{7}"])
        #expect(echo.status == 8)
        let lines = echo.stderr.split(separator: "\n")
        #expect(lines.count == 2 && !echo.stderr.contains("\u{1b}"), "\(echo.stderr.debugDescription)")
        // Its log line (swift-log's timestamp first), then the error.
        #expect(lines.first?.hasSuffix(#" error vmm: [org.vmmkit.test.fixture] a\nFAKE: ok\u{1b}[2J\u{1b}]0;t\u{7}"#) == true)
        #expect(lines.last.map(String.init) == "vmm: plugin 'org.vmmkit.test.fixture' (\(fixtures)/libINIT_FAILS.so): init failed: "
            + #"a\nFAKE: ok\u{1b}[2J\u{1b}]0;t\u{7}"#, "\(echo.stderr.debugDescription)")
        // A megabyte of message and of log line: each read and printed up to 4096 bytes.
        let long = try VMMProcess.run(["run", guest, "--load-addr", "0x100000", "--plugin", "\(fixtures)/libINIT_FAILS.so,long=1000000"])
        #expect(long.status == 8)
        let longLines = long.stderr.split(separator: "\n")
        let cut = String(repeating: "x", count: 4096) + "… (cut at 4096 bytes)"
        #expect(longLines.count == 2 && long.stderr.utf8.count < 9000, "\(long.stderr.utf8.count) bytes")
        #expect(longLines.first?.hasSuffix(" error vmm: [org.vmmkit.test.fixture] " + cut) == true)
        #expect(longLines.last.map(String.init) == "vmm: plugin 'org.vmmkit.test.fixture' (\(fixtures)/libINIT_FAILS.so): init failed: " + cut)
        // A console whose writes fail (a full disk) is reported once, not lost in silence.
        let full = try VMMProcess.run(["run", VMMProcess.guest("counter.elf"), "--serial", "file:/dev/full", "--max-seconds", "60"])
        #expect(full.status == 11, "\(full.stderr)")
        #expect(full.stderr.contains(" error vmm: [org.vmmkit.uart16550] com1: console output stopped, the guest's later output was lost: write to fd "),
                "\(full.stderr)")
        #expect(full.stderr.hasSuffix(" failed: No space left on device (errno 28)\n") && full.stderr.split(separator: "\n").count == 1, "\(full.stderr)")
        let missing = try VMMProcess.run(["run", guest, "--load-addr", "0x100000", "--plugin", "/nonexistent/libX.so"])
        #expect(missing.status == 8)
        #expect(missing.stderr == "vmm: plugin /nonexistent/libX.so: cannot open: No such file or directory (errno 2)\n")
    }

    @Test("demand paging: RAM comes from a snapshot plugin where it has one, zero-filled elsewhere, counted in --stats")
    func demandPaging() throws {
        // mov $0x400000,%ebx; mov (%rbx),%eax; mov $0xf4,%dx; out %al,%dx; hlt
        let reader = try VMMProcess.temp("reader.bin", [0xbb, 0x00, 0x00, 0x40, 0x00, 0x8b, 0x03, 0x66, 0xba, 0xf4, 0x00, 0xee, 0xf4])
        var page = [UInt8](repeating: 0, count: 4096)
        page[0] = 0x2a
        let snapshot = try VMMProcess.temp("snap.mem", page)
        let r = try VMMProcess.run(["run", reader, "--load-addr", "0x100000", "--stats",
                                    "--plugin", "MemoryFault,snapshot=\(snapshot),base=0x400000"])
        #expect(r.status == (0x2a << 1) | 1)
        #expect(r.stderr.contains("demand paging: 1 pages fetched"))
        // Without the snapshot plugin the page is zero, from the kernel: the fill=zero
        // default is a zero-fill handler, so no RAM is demand-paged through user space.
        let z = try VMMProcess.run(["run", reader, "--load-addr", "0x100000", "--stats"])
        #expect(z.status == 1)
        #expect(!z.stderr.contains("demand paging"), "\(z.stderr)")
        // With the snapshot plugin, a page outside its range is the kernel's zero page too.
        let outside = try VMMProcess.temp("reader5.bin", [0xbb, 0x00, 0x00, 0x50, 0x00, 0x8b, 0x03, 0x66, 0xba, 0xf4, 0x00, 0xee, 0xf4])
        let o = try VMMProcess.run(["run", outside, "--load-addr", "0x100000", "--stats",
                                    "--plugin", "MemoryFault,snapshot=\(snapshot),base=0x400000"])
        #expect(o.status == 1)
        #expect(o.stderr.contains("demand paging: 0 pages fetched"), "\(o.stderr)")
        // --no-default-plugins: no demand paging (and no debug-exit: the guest halts).
        let none = try VMMProcess.run(["run", reader, "--load-addr", "0x100000", "--no-default-plugins", "--stats"])
        #expect(!none.stderr.contains("demand paging"))
        // latency-us: the same page after a simulated store latency; out of range refused.
        let slow = try VMMProcess.run(["run", reader, "--load-addr", "0x100000", "--stats",
                                       "--plugin", "MemoryFault,snapshot=\(snapshot),base=0x400000,latency-us=100000"])
        #expect(slow.status == (0x2a << 1) | 1, "\(slow.stderr)")
        for bad in ["100001", "-1", "", "2ms", "18446744073709551617"] {
            let r = try VMMProcess.run(["run", reader, "--load-addr", "0x100000",
                                        "--plugin", "MemoryFault,snapshot=\(snapshot),base=0x400000,latency-us=\(bad)"])
            #expect(r.status == 8)
            #expect(r.stderr.hasSuffix("init failed: latency-us=\(bad) is not a number of microseconds in 0...100000\n"), "\(r.stderr)")
        }
    }

    @Test("vmm plugins lists id, version, ABI (and handlers with --probe), and why a candidate was refused")
    func pluginListing() throws {
        let r = try VMMProcess.run(["plugins", "--probe"])
        #expect(r.status == 0)
        #expect(r.stdout.contains("org.vmmkit.debug-exit 1.0.0 (ABI 1.2)"))
        #expect(r.stdout.contains("    handler: pio [0xf4..<0xf5] priority 0 exclusive"))
        let fixtures = VMMProcess.root.appendingPathComponent(".build/plugins/fixtures").path
        let f = try VMMProcess.run(["plugins", fixtures])
        #expect(f.stdout.contains("refused  \(fixtures)/libMAJOR2.so: plugin \(fixtures)/libMAJOR2.so: built for plugin ABI 2.0, but this host implements ABI 1.2"))
        #expect(f.stdout.contains("refused  \(fixtures)/not_a_library.so: plugin \(fixtures)/not_a_library.so: not a loadable shared library"))
    }
}

@Suite("Embedding example on real KVM", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct EmbeddedExampleTests {
    @Test("Examples/EmbeddedVMM boots an ELF64 image with VMMLoader, loads the debug-exit plugin, runs and reports")
    func embeddedVMM() throws {
        let r = try VMMProcess.run(binary: VMMProcess.root.appendingPathComponent(".build/debug/embedded-vmm").path, [])
        #expect(r.stdout == "Hello from an ELF64 guest\n")
        #expect(r.stderr.contains("embedded-vmm: booting .build/guests/hello64.elf: longMode(entry: 1048576, stack: 2097136)\n"))
        #expect(r.stderr.contains("embedded-vmm: loaded org.vmmkit.debug-exit 1.0.0 from "))
        #expect(r.stderr.hasSuffix("embedded-vmm: vCPU 0: guest exit with code 0 after 26 console exits\n"))
        #expect(r.status == 0)
    }

    @Test("embedded-vmm given a truncated image prints the loader's one-line reason and exits 2")
    func embeddedVMMBadImage() throws {
        let whole = try [UInt8](Data(contentsOf: URL(fileURLWithPath: VMMProcess.guest("hello64.elf"))))
        let cut = try VMMProcess.temp("embedded-cut.elf", Array(whole.prefix(40)))
        let r = try VMMProcess.run(binary: VMMProcess.root.appendingPathComponent(".build/debug/embedded-vmm").path, [cut])
        #expect(r.stderr == "embedded-vmm: \(cut): truncated ELF header (40 bytes)\n")
        #expect(r.stdout.isEmpty)
        #expect(r.status == 2)
    }
}

@Suite("The README demo on real KVM", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct DemoTests {
    @Test("vmm run --config demo.json: console, MMIO, demand paging, async PF report, stats, status 0")
    func demo() throws {
        let r = try VMMProcess.run(["run", "--config", "Examples/GuestImages/demo.json"])
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "VMMKit demo: a 64-bit guest under the vmm launcher")
        #expect(lines.contains("mmio: scratch register 2 holds 0x1234abcd after a write and a read"))
        #expect(lines.contains("demand paging: task A read 16 pages from the snapshot, checksum 0x1A1AD2E25D269BE8"))
        // With the default (in-kernel) irqchip: KVM's async-PF worker faults are handed
        // to the vCPU, so the guest gets async PFs and task B runs while A waits. The
        // config's latency-us=2000 gives B that time: with pages read at once from the
        // file a "ready" can be pending before B's first instruction (CI saw 16 of 16).
        let apf = lines.first { $0.hasPrefix("async page faults: ") }?.split(separator: " ").compactMap { Int($0) } ?? []
        #expect(apf.count == 3 && apf[0] >= 1 && apf[1] == apf[0] && apf[2] > 0, "\(lines)")
        #expect(r.stderr.contains("async page faults: \(apf.first ?? -1) not present"), "\(r.stderr)")
        #expect(lines.last == "demo: done, halting")
        #expect(r.stderr.contains("exit kind        count"))
        #expect(r.stderr.contains("demand paging: "))
        #expect(r.status == 0)
    }

    @Test("--read-ahead 8: the same console, pages installed ahead of the guest's sequential faults; out of range refused (flag: 2, config: 4)")
    func readAhead() throws {
        // Without async PF (the guest does not see the CPUID bits), so the fault router
        // resolves every fault and read-ahead follows them.
        let noAPF = ["--plugin", "AsyncPF,advertise=0"]
        let plain = try VMMProcess.run(["run", "--config", "Examples/GuestImages/demo.json"] + noAPF)
        let ahead = try VMMProcess.run(["run", "--config", "Examples/GuestImages/demo.json", "--read-ahead", "8"] + noAPF)
        #expect(ahead.status == 0 && ahead.stdout == plain.stdout)
        #expect(plain.stderr.contains("16 pages fetched (0 by vCPUs, 16 by the fault router, 0 read ahead)"))
        let line = ahead.stderr.split(separator: "\n").first { $0.hasPrefix("demand paging: 16 pages fetched") }.map(String.init) ?? ""
        let count = line.split(separator: ", ").last.flatMap { Int($0.prefix { $0.isNumber }) } ?? 0
        #expect(count > 0 && count < 16, "\(line)")
        let flag = try VMMProcess.run(["run", "--config", "Examples/GuestImages/demo.json", "--read-ahead", "257"])
        #expect(flag.status == 2 && flag.stderr == "vmm: --read-ahead must be from 0 to 256 pages, not 257\n")
        let config = try VMMProcess.temp("ra.json", Array(#"{"image": ".build/guests/demo.elf", "readAheadPages": -1}"#.utf8))
        defer { unlink(config) }
        let file = try VMMProcess.run(["run", "--config", config])
        #expect(file.status == 4 && file.stderr == "vmm: \(config): 'readAheadPages' must be an integer from 0 to 256\n")
    }
}
