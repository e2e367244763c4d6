@testable import Launcher
import Testing

/// The launcher state a snapshot carries (`LauncherMachine`): what `vmm restore` reads
/// from a snapshot directory, which is input like any file.
@Suite("the launcher state in a snapshot")
struct LauncherMachineTests {
    static func machine(serial: SerialTarget = .none, debugcon: SerialTarget = .none, parallel: SerialTarget = .none,
                        plugins: [String] = []) -> LauncherMachine {
        var o = LaunchOptions()
        o.memory = 64 << 20
        o.vcpus = 2
        o.serial = serial
        o.debugcon = debugcon
        o.parallel = parallel
        o.plugins = plugins
        return LauncherMachine(o)
    }

    static func decode(_ text: String) -> Result<LauncherMachine, LauncherError> {
        Result { () throws(LauncherError) in try LauncherMachine.decode(Array(text.utf8), version: 1, where: "snap") }
    }

    /// A blob's lines up to (without) `end`, with `replacing` values for their keys; a key
    /// replaced by nil is left out.
    static func lines(_ replacing: [String: String?] = [:]) -> String {
        var text = "vmm-launcher 1\n"
        for (key, value) in [("memory", "67108864"), ("vcpus", "2"), ("irqchip", "kernel"), ("default-plugins", "yes"),
                             ("strict-io", "no"), ("serial", "none")] {
            let v = replacing[key] ?? value
            if let v { text += "\(key) \(v)\n" }
        }
        return text
    }

    static let valid = lines()

    @Test("what is saved reads back as it was")
    func roundTrip() throws {
        let m = Self.machine(serial: .file("/tmp/a b"), plugins: ["UART,port=0x2f8", "./x.so", "Bare"])
        let back = try LauncherMachine.decode(try m.encodedForSaving(), version: 1, where: "snap")
        #expect(back == m)
        // A debug console, or LPT1's output, is one more line; a machine without one (LPT1's
        // bytes dropped) writes none, as before each existed.
        for target in [SerialTarget.stdio, .file("/tmp/out log")] {
            for (key, m) in [("debugcon", Self.machine(debugcon: target)), ("parallel", Self.machine(parallel: target))] {
                let bytes = try m.encodedForSaving()
                #expect(String(decoding: bytes, as: UTF8.self).contains("\n\(key) \(target.text)\n"))
                #expect(try LauncherMachine.decode(bytes, version: 1, where: "snap") == m)
            }
        }
        let none = String(decoding: try Self.machine().encodedForSaving(), as: UTF8.self)
        #expect(!none.contains("debugcon") && !none.contains("parallel"))
        // --no-hpet, --pvpanic and --uuid likewise: a line each (the UUID in lower case),
        // which reads back as written, and none for a machine without (as before each existed).
        var noHPET = LaunchOptions(), pvpanic = LaunchOptions(), uuid = LaunchOptions()
        noHPET.noHPET = true
        pvpanic.pvpanic = true
        uuid.uuid = try #require(MachineUUID("12345678-9ABC-def0-1122-334455667788"))
        let plain = String(decoding: try Self.machine().encodedForSaving(), as: UTF8.self)
        for (o, line) in [(noHPET, "hpet no"), (pvpanic, "pvpanic yes"), (uuid, "uuid 12345678-9abc-def0-1122-334455667788")] {
            let bytes = try LauncherMachine(o).encodedForSaving()
            #expect(String(decoding: bytes, as: UTF8.self).contains("\n\(line)\n"))
            #expect(try LauncherMachine.decode(bytes, version: 1, where: "snap") == LauncherMachine(o), "\(line)")
            #expect(!plain.contains(line.prefix { $0 != " " }), "\(line)")
        }
    }

    @Test("a damaged blob is refused in one line naming the line, its text quoted")
    func refusals() {
        let cases: [(String, String)] = [
            (Self.valid + "end\n", ""),
            (Self.valid + "plugin x\nend\n", ""),
            (Self.valid + "end", "not a 'vmm-launcher 1' blob ending in 'end'"),
            (Self.valid + "vcpus 3\nend\n", "'vcpus' given twice"),
            (Self.valid + "plugin \nend\n", "an empty plugin spec"),
            (Self.valid + "nokey\nend\n", "line 'nokey' is not 'key value'"),
            (Self.valid + "colour\u{1b}[2J x\nend\n", "unknown key 'colour\\u{1b}[2J'"),
            (Self.lines(["memory": "1048576"]) + "end\n", "memory '1048576'"),
            (Self.lines(["memory": "18446744073709551616"]) + "end\n", "memory '18446744073709551616'"),
            (Self.lines(["vcpus": "256"]) + "end\n", "vcpus '256'"),
            (Self.lines(["vcpus": "0"]) + "end\n", "vcpus '0'"),
            (Self.lines(["vcpus": "255"]) + "end\n", ""),
            // Digits only, as the launcher writes them: a sign is not a number of its.
            (Self.lines(["vcpus": "+2"]) + "end\n", "vcpus '+2'"),
            (Self.lines(["memory": "+134217728"]) + "end\n", "memory '+134217728'"),
            (Self.lines(["serial": "file:"]) + "end\n", "serial 'file:'"),
            (Self.valid + "debugcon stdio\nend\n", ""),
            (Self.valid + "debugcon none\nend\n", "debugcon 'none'"),
            (Self.valid + "debugcon tty\nend\n", "debugcon 'tty'"),
            (Self.valid + "debugcon stdio\ndebugcon stdio\nend\n", "'debugcon' given twice"),
            (Self.valid + "parallel file:/tmp/lpt\nend\n", ""),
            (Self.valid + "parallel none\nend\n", "parallel 'none'"),
            (Self.valid + "parallel file:\nend\n", "parallel 'file:'"),
            (Self.valid + "parallel stdio\nparallel stdio\nend\n", "'parallel' given twice"),
            (Self.lines(["strict-io": String?.none]) + "end\n", "no 'strict-io' line"),
            (Self.valid + "hpet no\nend\n", ""),
            (Self.valid + "hpet yes\nend\n", "hpet 'yes'"),
            (Self.valid + "hpet no\nhpet no\nend\n", "'hpet' given twice"),
            (Self.valid + "pvpanic yes\nend\n", ""),
            (Self.valid + "pvpanic no\nend\n", "pvpanic 'no'"),
            (Self.valid + "pvpanic yes\npvpanic yes\nend\n", "'pvpanic' given twice"),
            (Self.valid + "uuid 12345678-9abc-def0-1122-334455667788\nend\n", ""),
            (Self.valid + "uuid 00000000-0000-0000-0000-000000000000\nend\n", "uuid '00000000-0000-0000-0000-000000000000'"),
            (Self.valid + "uuid 12345678-9abc-def0-1122-3344556677\nend\n", "uuid '12345678-9abc-def0-1122-3344556677'"),
            (Self.valid + "uuid 1234567-89abc-def0-1122-334455667788\nend\n", "uuid '1234567-89abc-def0-1122-334455667788'"),
        ]
        for (text, why) in cases {
            switch Self.decode(text) {
            case .success:
                #expect(why.isEmpty, "accepted: \(text.debugDescription)")
            case let .failure(error):
                #expect(error.status == .snapshot)
                #expect(error.message == "snap: launcher state: \(why)", "for \(text.debugDescription)")
            }
        }
        let big = Self.valid + String(repeating: "plugin x\n", count: 8000) + "end\n"
        guard case let .failure(error) = Self.decode(big) else { Issue.record("a 72 KB blob was accepted"); return }
        #expect(error.message == "snap: launcher state: not UTF-8 text of at most 65536 bytes")
    }

    @Test("what restore may not follow on its own: a plugin path or config, a console, debug console or parallel port file its flag does not replace")
    func hostReferences() {
        #expect(Self.machine(serial: .stdio, plugins: ["UART", "ScratchDevice"]).hostReference(serialReplaced: false) == nil)
        #expect(Self.machine(plugins: ["Bare", "/lib/x.so"]).hostReference(serialReplaced: false) == "the plugin '/lib/x.so'")
        #expect(Self.machine(plugins: ["MemoryFault,fill=zero"]).hostReference(serialReplaced: false) == "the plugin 'MemoryFault,fill=zero'")
        let file = Self.machine(serial: .file("log"), plugins: ["x/y"])
        #expect(file.hostReference(serialReplaced: false) == "the console file 'file:log'")
        #expect(file.hostReference(serialReplaced: true) == "the plugin 'x/y'")
        let e9 = Self.machine(debugcon: .file("e9.log"))
        #expect(e9.hostReference(serialReplaced: false) == "the debug console file 'file:e9.log'")
        #expect(e9.hostReference(serialReplaced: false, debugconReplaced: true) == nil)
        #expect(Self.machine(debugcon: .stdio).hostReference(serialReplaced: false) == nil)
        let lpt = Self.machine(parallel: .file("lpt.out"))
        #expect(lpt.hostReference(serialReplaced: false) == "the parallel port file 'file:lpt.out'")
        #expect(lpt.hostReference(serialReplaced: false, parallelReplaced: true) == nil)
        #expect(Self.machine(parallel: .stdio).hostReference(serialReplaced: false) == nil)
    }

    @Test("a state its restore would refuse is not saved: a newline in a plugin spec or a console path, or over 64 KiB")
    func unsavable() {
        func refusal(_ m: LauncherMachine) -> String? {
            do { _ = try m.encodedForSaving(); return nil } catch { return error.status == .snapshot ? error.message : "status \(error.status)" }
        }
        // Without the check, this plugin spec would come back as two plugins.
        #expect(refusal(Self.machine(plugins: ["a\nplugin b"])) == "cannot snapshot: the plugin spec 'a\\nplugin b' holds a newline, which the launcher state cannot keep")
        #expect(refusal(Self.machine(serial: .file("/tmp/a\nb"))) == "cannot snapshot: the console path 'file:/tmp/a\\nb' holds a newline, which the launcher state cannot keep")
        #expect(refusal(Self.machine(debugcon: .file("/tmp/a\nb"))) == "cannot snapshot: the debug console path 'file:/tmp/a\\nb' holds a newline, which the launcher state cannot keep")
        #expect(refusal(Self.machine(parallel: .file("/tmp/a\nb"))) == "cannot snapshot: the parallel port path 'file:/tmp/a\\nb' holds a newline, which the launcher state cannot keep")
        #expect(refusal(Self.machine(plugins: [String(repeating: "p", count: 70_000)])) == "cannot snapshot: launcher state: not UTF-8 text of at most 65536 bytes")
        #expect(refusal(Self.machine(plugins: [""])) == "cannot snapshot: launcher state: an empty plugin spec")
        #expect(refusal(Self.machine(serial: .stdio, plugins: ["a,b=c"])) == nil)
    }
}
