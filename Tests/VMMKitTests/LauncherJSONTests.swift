import Testing

/// The launcher reads JSON configs with its own strict reader (no Foundation): what a
/// user sees for hostile or unusual files.
@Suite("vmm's JSON config reader")
struct LauncherJSONTests {
    func run(_ name: String, _ text: String, _ extra: [String] = []) throws -> VMMProcess.Result {
        let path = try VMMProcess.temp(name, Array(text.utf8))
        return try VMMProcess.run(["run", "--config", path] + extra)
    }

    @Test("malformed files are refused with status 4, naming the problem and the byte")
    func refusals() throws {
        let cases: [(String, String)] = [
            ("{\"memory\": \"8M\", \"memory\": \"16M\"}", "duplicate key 'memory' at byte 17"),
            ("{\"memory\": \"8M\"} x", "unexpected data after the JSON value at byte 17"),
            ("[1, 2]", "the top level is not an object"),
            (String(repeating: "[", count: 100_000), "nesting deeper than 64 levels at byte 64"),
            ("{\"image\": \"a\u{01}b\"}", "control character in a string at byte 13"),
            ("{\"vcpus\": 01}", "expected ',' or '}' at byte 11"),
            ("{\"image\": \"\\ud800\"}", "unpaired surrogate in a \\u escape"),
            ("{\"image\": \"\\q\"}", "invalid escape '\\\\q'"),
            // A NUL would cut the path short in open(): g.elf\0junk would open g.elf.
            ("{\"image\": \"g.elf\\u0000junk\"}", "\\u0000 in a string (no path, name or command line holds a NUL) at byte 22"),
            ("{\"fwCfg\": [\"opt/a,file=g\\u0000.x\"]}", "\\u0000 in a string"),
        ]
        for (i, (text, why)) in cases.enumerated() {
            let r = try run("bad\(i).json", text)
            #expect(r.status == 4, "\(text.prefix(40))")
            #expect(r.stderr.contains("malformed JSON or not an object (\(why)"), "\(r.stderr)")
        }
        // A number past a Double's range is JSON all the same: the key that reads it names itself.
        let huge = try run("huge-vcpus.json", "{\"vcpus\": 1e999}")
        #expect(huge.status == 4 && huge.stderr.hasSuffix("huge-vcpus.json: 'vcpus' must be an integer from 1 to 255\n"), "\(huge.stderr)")
    }

    @Test("a key or value holding control characters is shown escaped, on one line")
    func hostileText() throws {
        let key = try run("hostile-key.json", #"{"memory": "8M", "x\u001b[2J\nFAKE": 1}"#)
        #expect(key.status == 4)
        #expect(key.stderr.contains(#"unknown key 'x\u{1b}[2J\nFAKE' (known: "#), "\(key.stderr)")
        #expect(!key.stderr.contains("\u{1b}") && key.stderr.split(separator: "\n").count == 1, "\(key.stderr)")
        let value = try run("hostile-value.json", #"{"serial": "\u001b]0;t\u0007"}"#)
        #expect(value.status == 4)
        #expect(value.stderr.contains(#"not '\u{1b}]0;t\u{7}'"#), "\(value.stderr)")
    }

    @Test("escapes, numbers and whitespace as RFC 8259 has them")
    func accepted() throws {
        // The image path is decoded from escapes (and then cannot be read): the error shows it.
        let r = try run("escapes.json", " {\r\n\t\"vcpus\": 1.0e0, \"memory\": \"8M\", \"image\": \"\\/no\\u0020such\\ud83d\\ude00\"} ")
        #expect(r.status == 6)
        #expect(r.stderr.contains("/no such😀"), "\(r.stderr)")
    }
}
