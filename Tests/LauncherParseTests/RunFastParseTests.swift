@testable import Launcher
import Testing
@testable import VMMCommandLine

/// What the launcher gets from libVMMCommandLine.so for `vmm run args`: ArgumentParser's
/// parse, emitted as items and read back into `RunFlags` (nil if either refuses).
func viaArgumentParser(_ args: [String]) -> RunFlags? {
    guard let run = try? RunArguments.parse(args) else { return nil }
    var items: [(key: String, value: String?)] = []
    run.emit { items.append(($0, $1)) }
    guard items.first?.key == "command", items.first?.value == "run" else { return nil }
    return try? RunFlags(ParsedCommand(name: "run", items: Array(items.dropFirst())))
}

/// `vmm run`'s fast parser (RunFastParse.swift) against ArgumentParser on the same input:
/// whatever the fast parser accepts, ArgumentParser must accept with the same values.
@Suite("vmm run's fast argument parser")
struct RunFastParseTests {
    /// What a user types: each must take the fast path, or start-up pays for ArgumentParser.
    static let common: [[String]] = [
        ["guest.elf"],
        ["guest.elf", "--irqchip", "none"],
        ["--memory", "256M", "--vcpus", "2", "guest.elf", "--stats", "--trace", "exits"],
        ["guest.elf", "--no-default-plugins", "--plugin", "DebugExit", "--plugin", "UART,output=stdout"],
        ["guest.elf", "--max-seconds", "2.5", "--serial", "file:/tmp/out", "--strict-io", "--no-seccomp", "--debugcon", "stdio", "--vga-text", "file:/tmp/screen", "--parallel", "file:/tmp/lpt"],
        ["--config", "vm.json", "--append=console=ttyS0 quiet", "--initrd", "mod.bin"],
        ["kernel.elf", "--hda", "disk.img", "--hda-readonly", "--no-hpet"],
        ["kernel.elf", "--vga", "std", "--screendump", "file:/tmp/shot.ppm"],
        ["kernel.elf", "--fw-cfg", "opt/a,string=x,,y", "--plugin", "DebugExit", "--fw-cfg=name=opt/b,file=/tmp/b", "--pvpanic", "--uuid", "12345678-9abc-def0-1122-334455667788"],
        ["flat.bin", "--load-addr", "0x8000", "--entry", "0x8000", "--mode", "16", "--read-ahead", "8"],
        ["guest.elf", "--handler-budget=0.5", "--log-level", "debug", "--snapshot-on-stop", "snap", "--api-sock", "api.sock"],
    ]

    @Test("the common forms take the fast path and read as ArgumentParser reads them")
    func common() throws {
        for args in Self.common {
            let fast = try #require(RunFlags.fastParse(["run"] + args), "\(args)")
            #expect(viaArgumentParser(args) == fast, "\(args)")
        }
    }

    @Test("help, unknown, repeated and dash-led input is left to ArgumentParser")
    func declined() {
        let cases: [[String]] = [
            ["--help"], ["-h"], ["help"], ["guest.elf", "--"], ["guest.elf", "--nope"], ["a", "b"],
            ["guest.elf", "--stats", "--stats"], ["guest.elf", "--vcpus", "1", "--vcpus", "2"],
            ["guest.elf", "--append", "-flag value"], ["guest.elf", "--memory"], ["guest.elf", "--stats=1"], [""],
        ]
        for args in cases { #expect(RunFlags.fastParse(["run"] + args) == nil, "\(args)") }
        #expect(RunFlags.fastParse(["restore", "dir"]) == nil)
        #expect(RunFlags.fastParse([]) == nil)
    }

    @Test("4,000 generated argument vectors: accepted ones equal ArgumentParser's parse")
    func generated() {
        let names = ["memory", "vcpus", "read-ahead", "irqchip", "plugin", "no-default-plugins", "config", "serial", "debugcon", "parallel", "vga-text",
                     "trace", "stats", "strict-io", "max-seconds", "append", "initrd", "load-addr", "entry", "mode",
                     "handler-budget", "no-seccomp", "log-level", "snapshot-on-stop", "api-sock", "hda", "hda-readonly",
                     "vga", "screendump", "no-hpet", "fw-cfg", "pvpanic", "uuid", "help", "version", "nope", "generate-completion-script", "experimental-dump-help", ""]
        let values = ["64M", "2", "0", "-1", "+3", "1e3", "nan", "inf", "0x10", "a=b", "", "g.elf", "DebugExit",
                      "UART,output=stdout", "-x", "kernel", "none", "3.5", " 5", "\u{FF11}", "9223372036854775808",
                      "help", "-", "--", "-h", "run", "=", "file:/x y"]
        var rng = SplitMix64(seed: 0x5EED)
        var accepted = 0
        for _ in 0..<4_000 {
            var args: [String] = []
            for _ in 0..<Int(rng.next() % 7) {
                switch rng.next() % 5 {
                case 0, 1: args.append("--" + names[Int(rng.next() % UInt64(names.count))])
                case 2: args.append("--" + names[Int(rng.next() % UInt64(names.count))] + "=" + values[Int(rng.next() % UInt64(values.count))])
                default: args.append(values[Int(rng.next() % UInt64(values.count))])
                }
            }
            guard let fast = RunFlags.fastParse(["run"] + args) else { continue }
            accepted += 1
            #expect(viaArgumentParser(args) == fast, "\(args)")
        }
        // The generator must reach the fast path often enough for the comparison to mean something.
        #expect(accepted > 200, "\(accepted) accepted")
    }
}

/// A fixed-seed generator, so a failure names input that reproduces.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
