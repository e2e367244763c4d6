import Testing

/// Command-line arguments are input like any file: a usage error naming one is a single
/// line of bounded size with nothing hidden in it, whichever parser refused it (the
/// launcher's own checks, or ArgumentParser in libVMMCommandLine.so).
@Suite("vmm's command-line errors")
struct LauncherCommandLineTests {
    func refuse(_ args: [String]) throws -> String {
        let r = try VMMProcess.run(args)
        #expect(r.status == 2, "\(args): \(r.stderr)")
        #expect(r.stdout.isEmpty, "\(r.stdout)")
        // One line: "vmm: ...\n", no control character before the newline.
        #expect(r.stderr.hasPrefix("vmm: ") && r.stderr.hasSuffix("\n"), "\(r.stderr)")
        #expect(!r.stderr.dropLast().unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7f }, "\(r.stderr)")
        #expect(r.stderr.utf8.count <= 4096, "\(r.stderr.utf8.count) bytes")
        return r.stderr
    }

    @Test("ArgumentParser's errors repeat a value with a newline or an escape whole, escaped")
    func argumentParserErrors() throws {
        let image = VMMProcess.guest("hello64.elf")
        // Was "vmm: Error: The value '1" (cut at the newline), from --mode 1\n6.
        let extra = try refuse(["run", image, "1\n6"])
        #expect(extra == "vmm: Error: Unexpected argument '1\\n6'\n", "\(extra)")
        // Was the raw ESC sequence (clears a terminal).
        let option = try refuse(["run", image, "--a\u{1b}[2Jb"])
        #expect(option == "vmm: Error: Unknown option '--a\\u{1b}[2Jb'\n", "\(option)")
        let command = try refuse(["ru\nn"])
        #expect(command.hasPrefix("vmm: Error: Unexpected argument 'ru\\nn'"), "\(command)")
        // Was a 100 KB line.
        let huge = try refuse(["run", image, String(repeating: "7", count: 100_000)])
        #expect(huge.contains("… (") && huge.hasSuffix(" bytes)\n"), "\(huge.prefix(200))")
        // Unchanged for plain text.
        #expect(try refuse(["run", "--frobnicate", image]) == "vmm: Error: Unknown option '--frobnicate'\n")
    }

    @Test("the launcher's own checks quote the value they refuse, bounded")
    func launcherChecks() throws {
        let image = VMMProcess.guest("hello64.elf")
        #expect(try refuse(["run", image, "--memory", "x\ny"]) == "vmm: --memory: not a size: 'x\\ny' (e.g. 64M)\n")
        #expect(try refuse(["run", image, "--mode", "1\n6"]) == "vmm: --mode must be 16 or 64, not '1\\n6'\n")
        let mode = try refuse(["run", image, "--mode", String(repeating: "7", count: 100_000)])
        #expect(mode.hasPrefix("vmm: --mode must be 16 or 64, not '777") && mode.hasSuffix("…' (100000 bytes)\n"), "\(mode.prefix(200))")
        #expect(try refuse(["run", image, "--irqchip", "a\u{1b}[2Jb"]) == "vmm: --irqchip must be kernel or none, not 'a\\u{1b}[2Jb'\n")
        let long = try refuse(["run", image, "--load-addr", String(repeating: "z", count: 100_000)])
        #expect(long.hasPrefix("vmm: --load-addr: not an address: 'zzz") && long.hasSuffix("…' (100000 bytes)\n"), "\(long.prefix(200))")
        // vmm restore checks --max-seconds as vmm run does (inf ran until killed).
        #expect(try refuse(["restore", "/nonexistent-snapshot", "--max-seconds", "inf"])
            == "vmm: --max-seconds must be a number of seconds from 0.000001 to 1000000000, not 'inf'\n")
        let ctl = try refuse(["ctl", "/nonexistent.sock", "re\u{1b}[0msume"])
        #expect(ctl.contains("unknown command 're\\u{1b}[0msume'"), "\(ctl)")
    }
}
