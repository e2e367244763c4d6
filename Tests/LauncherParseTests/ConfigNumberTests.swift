@testable import Launcher
import Testing

/// Numbers in the config file and in number-valued flags: integers exact, seconds plain
/// and at least 1 µs, every refusal naming the key or the flag.
@Suite("config and flag numbers")
struct ConfigNumberTests {
    func parse(_ json: String) -> Result<LaunchOptions, LauncherError> {
        Result { () throws(LauncherError) in try LaunchOptions.parse(Array(json.utf8), path: "vm.json") }
    }

    func refusal(_ json: String) -> String? {
        guard case let .failure(error) = parse(json) else { return nil }
        return error.status == .config ? error.message : "status \(error.status)"
    }

    @Test("a JSON number's whole value is read from its text, exactly; fractions, negatives and 2^64 are not whole")
    func wholeNumbers() {
        let cases: [(String, UInt64?)] = [
            ("0", 0), ("-0", 0), ("-0.0e7", 0), ("64", 64), ("6.4e1", 64), ("640e-1", 64), ("1E+2", 100), ("1.000", 1),
            ("9007199254740993", 9_007_199_254_740_993), ("18446744073709551615", .max), ("1.8446744073709551615e19", .max),
            ("18446744073709551616", nil), ("1e20", nil), ("1.5", nil), ("-1", nil), ("5e-324", nil), ("1e999", nil),
            ("1e1000000000000", nil), ("0e1000000000000", 0), ("100e-1000000000000", nil), ("", nil),
        ]
        for (text, value) in cases {
            #expect(JSONNumber(text: text).wholeNumber == value, "\(text)")
        }
    }

    @Test("integer keys hold exact values: 2^53 + 1 is not 2^53")
    func exactIntegers() throws {
        let o = try parse(#"{"loadAddr": 9007199254740993, "entry": 9007199254740995, "vcpus": 2e0, "readAheadPages": 1.6e1, "mode": 16}"#).get()
        #expect(o.loadAddress == 0x20_0000_0000_0001 && o.entry == 0x20_0000_0000_0003)
        #expect(o.vcpus == 2 && o.readAheadPages == 16 && o.mode == 16)
        #expect(try parse(#"{"loadAddr": 18446744073709551615}"#).get().loadAddress == .max)
    }

    @Test("an integer key with a fraction, a sign or more than it holds is refused naming the key", arguments: [
        (#""vcpus": 1.5"#, "'vcpus' must be an integer from 1 to 255"),
        (#""vcpus": 9007199254740993"#, "'vcpus' must be an integer from 1 to 255"),
        (#""vcpus": 1e999"#, "'vcpus' must be an integer from 1 to 255"),
        (#""readAheadPages": -1"#, "'readAheadPages' must be an integer from 0 to 256"),
        (#""mode": 16.5"#, "'mode' must be 16 or 64"),
        (#""mode": 32"#, "'mode' must be 16 or 64"),
        (#""loadAddr": 18446744073709551616"#, #"'loadAddr' must be an address: a string ("0x100000") or a whole number from 0 to 2^64 - 1"#),
        (#""entry": 4096.5"#, #"'entry' must be an address: a string ("0x100000") or a whole number from 0 to 2^64 - 1"#),
    ])
    func integerRefusals(pair: String, why: String) {
        #expect(refusal("{\(pair)}") == "vm.json: \(why)")
    }

    @Test("seconds keys take any JSON number from 1 µs to their limit; below, above or out of range names the key and the number")
    func secondsKeys() throws {
        let o = try parse(#"{"maxSeconds": 2.5e-1, "handlerBudget": 0.000001}"#).get()
        #expect(o.maxSeconds == 0.25 && o.handlerBudget == 0.000001)
        #expect(o.maxSecondsGiven == "'maxSeconds' 2.5e-1 (vm.json)")
        let cases: [(String, String)] = [
            (#""maxSeconds": 5e-324"#, "'maxSeconds' must be a number of seconds from 0.000001 to 1000000000, not 5e-324"),
            (#""maxSeconds": 0"#, "'maxSeconds' must be a number of seconds from 0.000001 to 1000000000, not 0"),
            (#""maxSeconds": 1e999"#, "'maxSeconds' must be a number of seconds from 0.000001 to 1000000000, not 1e999"),
            (#""maxSeconds": -1"#, "'maxSeconds' must be a number of seconds from 0.000001 to 1000000000, not -1"),
            (#""maxSeconds": "5""#, "'maxSeconds' must be a number of seconds from 0.000001 to 1000000000"),
            (#""handlerBudget": 9.9e-7"#, "'handlerBudget' must be a number of seconds from 0.000001 to 86400, not 9.9e-7"),
            (#""handlerBudget": 86401"#, "'handlerBudget' must be a number of seconds from 0.000001 to 86400, not 86401"),
        ]
        for (pair, why) in cases { #expect(refusal("{\(pair)}") == "vm.json: \(why)", "\(pair)") }
        // A number of a thousand digits is shown cut.
        let long = refusal(#"{"maxSeconds": 1\#(String(repeating: "0", count: 1000))}"#) ?? ""
        #expect(long.hasSuffix("… (1001 bytes)") && long.utf8.count < 200, "\(long)")
    }

    @Test("seconds flags: decimal digits with an optional point only")
    func plainSeconds() {
        let cases: [(String, Double?)] = [
            ("2", 2), ("0.25", 0.25), ("0.000001", 0.000001), ("007.50", 7.5),
            ("0x10", nil), ("inf", nil), ("nan", nil), ("1e3", nil), ("1e999", nil), (" 5", nil), ("5 ", nil), ("+5", nil),
            ("-1", nil), (".5", nil), ("5.", nil), ("1.2.3", nil), ("", nil), ("٣", nil), ("1_0", nil),
        ]
        for (text, value) in cases { #expect(Sizes.parseSeconds(text) == value, "\(text)") }
    }
}
