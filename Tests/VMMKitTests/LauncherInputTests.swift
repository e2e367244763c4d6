import Foundation
import Testing

/// What a user sees for hostile values of `vmm`'s options and config keys (a prober's
/// findings): the documented status and one line naming the flag or the file's key.
/// Each is refused before a VM is built, so no KVM is needed but where a test says so.
@Suite("vmm's option values")
struct LauncherInputTests {
    static let image = VMMProcess.guest("hello64.elf")

    func config(_ name: String, _ json: String) throws -> String {
        try VMMProcess.temp(name, Array(json.utf8))
    }

    /// Each value no seconds flag takes: not plain decimal digits with an optional point,
    /// or outside 1 µs to the flag's limit; as the refusal shows it.
    static let badSeconds: [(String, String)] = [
        ("0x10", "'0x10'"), ("inf", "'inf'"), ("nan", "'nan'"), ("1e999", "'1e999'"), (" 5", "' 5'"), ("5 ", "'5 '"),
        ("+5", "'+5'"), (".5", "'.5'"), ("1e3", "'1e3'"), ("0", "0"), ("0.0000009", "'0.0000009'"), ("1000000001", "1000000001"),
    ]

    @Test("every seconds flag of run, restore and plugins refuses what is not a plain decimal number of seconds from 1 µs, naming the flag",
          arguments: badSeconds)
    func secondsFlags(value: String, shown: String) throws {
        let cases: [([String], String)] = [
            (["run", Self.image, "--max-seconds", value], "--max-seconds must be a number of seconds from 0.000001 to 1000000000"),
            (["run", Self.image, "--handler-budget=\(value)"], "--handler-budget must be a number of seconds from 0.000001 to 86400"),
            (["restore", "/nonexistent-snapshot", "--max-seconds", value], "--max-seconds must be a number of seconds from 0.000001 to 1000000000"),
            (["restore", "/nonexistent-snapshot", "--handler-budget", value], "--handler-budget must be a number of seconds from 0.000001 to 86400"),
            (["plugins", "--probe", "--probe-timeout", value], "--probe-timeout must be a number of seconds from 0.000001 to 3600"),
        ]
        for (args, why) in cases {
            let r = try VMMProcess.run(args)
            #expect(r.status == 2 && r.stderr == "vmm: \(why), not \(shown)\n", "\(args): \(r.stderr)")
        }
    }

    @Test("integer flags take decimal digits only, naming the flag", arguments: ["+1", "0x1", "1e0", " 1", "1.0", "two"])
    func integerFlags(value: String) throws {
        let shown = "'\(value)'"
        for (flag, why) in [("vcpus", "from 1 to 255"), ("read-ahead", "from 0 to 256 pages"), ("mode", "16 or 64")] {
            let r = try VMMProcess.run(["run", Self.image, "--\(flag)=\(value)"])
            #expect(r.status == 2 && r.stderr == "vmm: --\(flag) must be \(why), not \(shown)\n", "\(flag): \(r.stderr)")
        }
    }

    @Test("config: 'maxSeconds': 5e-324 and 'loadAddr' past 2^64 exit 4 naming the key; 2^53 + 1 is read exactly")
    func configNumbers() throws {
        let tiny = try config("tiny-secs.json", #"{"image": "\#(Self.image)", "maxSeconds": 5e-324}"#)
        let t = try VMMProcess.run(["run", "--config", tiny])
        #expect(t.status == 4 && t.stderr == "vmm: \(tiny): 'maxSeconds' must be a number of seconds from 0.000001 to 1000000000, not 5e-324\n", "\(t.stderr)")
        let huge = try config("huge-secs.json", #"{"image": "\#(Self.image)", "maxSeconds": 1e999}"#)
        let h = try VMMProcess.run(["run", "--config", huge])
        #expect(h.status == 4 && h.stderr == "vmm: \(huge): 'maxSeconds' must be a number of seconds from 0.000001 to 1000000000, not 1e999\n", "\(h.stderr)")
        let flat = try VMMProcess.temp("input-hlt.bin", [0xf4])
        let wide = try config("wide-addr.json", #"{"image": "\#(flat)", "loadAddr": 18446744073709551616}"#)
        let w = try VMMProcess.run(["run", "--config", wide])
        #expect(w.status == 4 && w.stderr == #"vmm: \#(wide): 'loadAddr' must be an address: a string ("0x100000") or a whole number from 0 to 2^64 - 1"# + "\n", "\(w.stderr)")
        // Was read as 0x20000000000000 (through a Double), and that address was named.
        let exact = try config("exact-addr.json", #"{"image": "\#(flat)", "loadAddr": 9007199254740993}"#)
        let e = try VMMProcess.run(["run", "--config", exact])
        #expect(e.status == 6 && e.stderr == "vmm: \(flat): flat image [0x20000000000001..<0x20000000000002] lies outside guest RAM [0x0..<0x8000000] (128 MiB)\n",
                "\(e.stderr)")
    }

    @Test("an option that takes one value, given twice, is refused naming it and both values; a flag over the config's key is no repeat")
    func repeatedOptions() throws {
        let cases: [([String], String)] = [
            (["run", Self.image, "--memory", "1G", "--memory", "3M"], "--memory given more than once ('1G', then '3M')"),
            (["run", Self.image, "--serial", "none", "--serial", "stdio"], "--serial given more than once ('none', then 'stdio')"),
            (["run", Self.image, "--max-seconds=1", "--max-seconds", "2"], "--max-seconds given more than once ('1', then '2')"),
            (["run", Self.image, "--append", "a", "--append", "-b"], "--append given more than once ('a', then '-b')"),
            (["run", "--config", "a.json", "--config=b.json"], "--config given more than once ('a.json', then 'b.json')"),
            (["run", Self.image, "--uuid", "x", "--vcpus", "1", "--uuid", "y\n"], "--uuid given more than once ('x', then 'y\\n')"),
            (["restore", "/nonexistent-snapshot", "--serial", "none", "--serial", "stdio"], "--serial given more than once ('none', then 'stdio')"),
            (["plugins", "--probe-timeout", "1", "--probe-timeout", "1"], "--probe-timeout given more than once ('1', then '1')"),
        ]
        for (args, why) in cases {
            let r = try VMMProcess.run(args)
            #expect(r.status == 2 && r.stderr == "vmm: \(why); it takes one value\n", "\(args): \(r.stderr)")
        }
        // The file's key and the flag: the flag wins, no refusal (it then fails later, on the size).
        let file = try config("repeat-mem.json", #"{"image": "\#(Self.image)", "memory": "1M"}"#)
        let r = try VMMProcess.run(["run", "--config", file, "--memory", "1K"])
        #expect(r.status == 2 && r.stderr == "vmm: --memory must be at least 2M\n", "\(r.stderr)")
    }

    @Test("--memory 0 (and the config's \"0\") is below the 2M minimum, said so, not \"not a size\"", arguments: ["0", "0B", "0K", "00M"])
    func zeroMemory(size: String) throws {
        let flag = try VMMProcess.run(["run", Self.image, "--memory", size])
        #expect(flag.status == 2 && flag.stderr == "vmm: --memory must be at least 2M\n", "\(flag.stderr)")
        let file = try config("zero-mem.json", #"{"image": "\#(Self.image)", "memory": "\#(size)"}"#)
        let c = try VMMProcess.run(["run", "--config", file])
        #expect(c.status == 4 && c.stderr == "vmm: \(file): 'memory' must be at least 2M\n", "\(c.stderr)")
    }
}

@Suite("vmm's option values on real KVM", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct LauncherInputKVMTests {
    @Test("the repeatable options stay repeatable: two --plugin and two --fw-cfg run")
    func repeatable() throws {
        let r = try VMMProcess.run(["run", VMMProcess.guest("hello64.elf"), "--no-default-plugins", "--plugin", "DebugExit", "--plugin", "UART",
                                    "--fw-cfg", "opt/a,string=1", "--fw-cfg", "opt/b,string=2"])
        #expect(r.status == 1 && r.stdout == "Hello from an ELF64 guest\n" && r.stderr.isEmpty, "\(r.stderr)")
    }

    /// A bundled plugin's config with a key given twice, or a number with a sign: the end
    /// of the one line the plugin's refusal gives (status 8).
    static let pluginKeys: [(String, String)] = [
        ("DebugExit,port=0xf4,port=0xf5", "debug-exit: key 'port' given twice"),
        ("DebugExit,mmio=0xd0000000,mmio=0xd0000000", "debug-exit: key 'mmio' given twice"),
        ("DebugExit,port=+0xf4", "debug-exit: bad value for key 'port' (a port, 0..0xffff)"),
        ("DebugExit,port= 244", "debug-exit: bad value for key 'port' (a port, 0..0xffff)"),
        ("MemoryFault,fill=zero,fill=zero", "config key 'fill' given twice"),
        ("MemoryFault,fill=zero,priority=1,latency-us=0,priority=2", "config key 'priority' given twice"),
        ("MemoryFault,fill=zero,base=-4096", "base=-4096 is not a page-aligned number"),
        ("MemoryFault,fill=zero,base=0x10000000000000000", "base=0x10000000000000000 is not a page-aligned number"),
        ("ScratchDevice,port=0x540,port=0x550", "org.vmmkit.scratch-device: key 'port' given twice"),
        ("AsyncPF,advertise=1,advertise=0", "org.vmmkit.async-pf: key 'advertise' given twice"),
        ("UART,port=0x3f8,port=0x2f8", "uart: key 'port' given twice"),
    ]

    @Test("a bundled plugin refuses a key given twice (and a signed number), in one line naming it: status 8", arguments: pluginKeys)
    func pluginKeyTwice(spec: String, why: String) throws {
        let r = try VMMProcess.run(["run", VMMProcess.guest("hello64.elf"), "--plugin", spec])
        #expect(r.status == 8 && r.stderr.hasPrefix("vmm: plugin '") && r.stderr.hasSuffix("init failed: \(why)\n")
                && r.stderr.split(separator: "\n").count == 1, "\(spec): \(r.stderr)")
    }

    @Test("the stop line names what set the time: the config file's key, or the flag that overrides it, as written")
    func stopNamesItsSource() throws {
        let spin = try VMMProcess.temp("input-spin.bin", [0xeb, 0xfe])
        let file = try VMMProcess.temp("input-secs.json", Array(#"{"image": "\#(spin)", "loadAddr": "0x100000", "maxSeconds": 2e-1}"#.utf8))
        let viaFile = try VMMProcess.run(["run", "--config", file])
        #expect(viaFile.status == 16 && viaFile.stderr == "vmm: stopped after 'maxSeconds' 2e-1 (\(file))\n", "\(viaFile.stderr)")
        let viaFlag = try VMMProcess.run(["run", "--config", file, "--max-seconds", "0.20"])
        #expect(viaFlag.status == 16 && viaFlag.stderr == "vmm: stopped after --max-seconds 0.20\n", "\(viaFlag.stderr)")
    }
}
