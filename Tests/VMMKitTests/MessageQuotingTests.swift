import CVMMPlugin
import Testing
@testable import VMMControl
@testable import VMMKit
@testable import VMMSnapshot

/// Errors about input quote the input's text (`quotedForMessage`): one line, no control
/// or bidirectional character, bounded. Each reader below once echoed it raw, so a config
/// key, a JSON field name, a manifest token or a recording line could put a second line
/// or an escape sequence into the message a user sees.
@Suite("input text in error messages")
struct MessageQuotingTests {
    /// A newline (a forged second line), ESC sequences (clear screen, retitle a terminal),
    /// a right-to-left override.
    static let hostile = "a\nFAKE: ok\u{1b}[2J\u{1b}]0;t\u{7}\u{202e}z"
    static let shown = #"'a\nFAKE: ok\u{1b}[2J\u{1b}]0;t\u{7}\u{202e}z'"#

    @Test("plain text reads as before; controls, quotes and long text are escaped and cut")
    func quoting() {
        #expect("ram".quotedForMessage == "'ram'")
        #expect("é😀 x".quotedForMessage == "'é😀 x'")
        #expect(Self.hostile.quotedForMessage == Self.shown)
        #expect(#"it's a\b"#.quotedForMessage == #"'it\'s a\\b'"#)
        #expect("\t\r\u{7f}\u{85}\u{2028}".quotedForMessage == #"'\t\r\u{7f}\u{85}\u{2028}'"#)
        let long = String(repeating: "x", count: 200)
        #expect(long.quotedForMessage == "'" + String(repeating: "x", count: 80) + "…' (200 bytes)")
        #expect(String(repeating: "é", count: 10).quotedForMessage(limit: 3) == "'ééé…' (20 bytes)")
        #expect(String(repeating: "x", count: 80).quotedForMessage == "'" + String(repeating: "x", count: 80) + "'")
        // A whole message: hidden scalars escaped, quotes and backslashes left alone.
        #expect(#"plugin 'p': it's \ fine"#.asOneLine == #"plugin 'p': it's \ fine"#)
        #expect(("x: " + Self.hostile).asOneLine == #"x: a\nFAKE: ok\u{1b}[2J\u{1b}]0;t\u{7}\u{202e}z"#)
    }

    @Test("a control API field name")
    func controlField() throws {
        let body = Array("{\"state\": \"Paused\", \"\(Self.hostile.jsonEscaped)\": \"y\"}".utf8)
        #expect(throws: ControlError.badRequest("unknown field \(Self.shown)")) {
            try ControlAPI.fields(body, required: ["state"])
        }
        let twice = Array("{\"\(Self.hostile.jsonEscaped)\": \"1\", \"\(Self.hostile.jsonEscaped)\": \"2\"}".utf8)
        #expect(throws: ControlError.badRequest("field \(Self.shown) given twice")) { try FlatJSON.parseObject(twice) }
    }

    @Test("a snapshot manifest's token")
    func manifestToken() {
        let text = "vmmkit-snapshot 1\nvcpus 1\n\u{1b}[2J\u{202e} x\nend\n"
        #expect(throws: SnapshotError.invalid(path: "m", #"line 3: unknown item '\u{1b}[2J\u{202e}'"#)) {
            try SnapshotManifest.parse(Array(text.utf8), path: "m")
        }
        let long = "vmmkit-snapshot 1\nvcpus " + String(repeating: "9", count: 100_000) + "\nend\n"
        #expect(throws: SnapshotError.invalid(path: "m",
            "line 2: vCPU count '" + String(repeating: "9", count: 80) + "…' (100000 bytes) is not a number that fits 64 bits")) {
            try SnapshotManifest.parse(Array(long.utf8), path: "m")
        }
    }

    @Test("a manifest's state files: the first difference, not both lists")
    func stateFileList() {
        let none = "vmmkit-snapshot 1\nvcpus 1024\nmemory memory.bin 0x1000\nend\n"
        #expect(throws: SnapshotError.invalid(path: "m",
            "state file 1 is missing, expected 'vm.state' (vm.state, then vcpu0.state to vcpu1023.state, in order)")) {
            try SnapshotManifest.parse(Array(none.utf8), path: "m")
        }
        let swapped = "vmmkit-snapshot 1\nvcpus 2\nmemory memory.bin 0x1000\nstate vm.state 1 0x1\n"
            + "state vcpu1.state 1 0x1\nstate vcpu0.state 1 0x1\nend\n"
        #expect(throws: SnapshotError.invalid(path: "m",
            "state file 2 is 'vcpu1.state', expected 'vcpu0.state' (vm.state, then vcpu0.state to vcpu1.state, in order)")) {
            try SnapshotManifest.parse(Array(swapped.utf8), path: "m")
        }
    }

    @Test("an exit recording's line")
    func recordingLine() {
        let text = "vmmkit-exit-recording v1\nsnap\r\u{1b}[1A 0 x\n"
        #expect(throws: VMMError.invalidArgument(#"recording line 2: unknown line kind 'snap\r\u{1b}[1A': 'snap\r\u{1b}[1A 0 x'"#)) {
            try ExitRecording(parsing: text)
        }
    }

    @Test("a plugin's id: letters, digits, '.', '-', '_', with a '.', at most 253 bytes")
    func pluginID() throws {
        func validate(_ id: String) throws(PluginError) -> PluginDescriptor {
            try PluginEntryFields(structSize: UInt32(PluginEntryFields.minimumSize), abiMajor: UInt16(VMM_PLUGIN_ABI_MAJOR), abiMinor: 0)
                .validate(path: "/p.so") { PluginEntryFields.Body(id: id, version: "1", summary: nil, hasInit: true, hasDestroy: true) }
        }
        #expect(try validate("org.example.my-device_2").id == "org.example.my-device_2")
        #expect(try validate("a." + String(repeating: "b", count: 251)).id.utf8.count == 253)
        for id in ["org.example.dev\nice", "org.example.\u{1b}[2J", "org example.x", "org/example.x", "nodot", "org.é.x",
                   "a." + String(repeating: "b", count: 252)] {
            #expect(throws: PluginError.self, "\(id.quotedForMessage)") { try validate(id) }
        }
        do {
            _ = try validate("org.example.\u{1b}[2J")
        } catch {
            #expect(error.description.contains(#"id 'org.example.\u{1b}[2J' is not a reverse-DNS name"#), "\(error)")
        }
    }
}

private extension String {
    /// The text as a JSON string's content: control characters as escapes.
    var jsonEscaped: String {
        var out = ""
        for s in unicodeScalars {
            switch s.value {
            case 0x0a: out += "\\n"
            case 0..<0x20: out += "\\u00" + (s.value < 0x10 ? "0" : "") + String(s.value, radix: 16)
            default: out.unicodeScalars.append(s)
            }
        }
        return out
    }
}
