import VMMKit

/// Number-valued flags, read by the launcher from their text (both command-line parsers
/// hand them over as given): plain decimal digits only, each refusal one line naming the
/// flag. ArgumentParser's `Int` and `Double` took "+3", "0x10" as 16 and "inf", and
/// refused others in words of its own.
enum FlagValues {
    /// `text` shown in a refusal: as it is when it is a few decimal digits, quoted and
    /// bounded otherwise (it may hold a space, a newline or megabytes).
    static func shown(_ text: String) -> String {
        text.utf8.count <= 24 && UInt64(plainDecimal: text) != nil ? text : text.quotedForMessage
    }

    /// A whole number from `range` (decimal digits), or the flag's one-line refusal.
    static func integer(flag: String, _ text: String, _ range: ClosedRange<Int>, unit: String = "") throws(LauncherError) -> Int {
        guard let n = UInt64(plainDecimal: text), n <= UInt64(range.upperBound), Int(n) >= range.lowerBound else {
            throw LauncherError(.usage, "--\(flag) must be from \(range.lowerBound) to \(range.upperBound)\(unit), not \(shown(text))")
        }
        return Int(n)
    }

    /// Seconds (`Sizes.parseSeconds`) from `LaunchOptions.minSeconds` to `max`, or the
    /// flag's one-line refusal.
    static func seconds(flag: String, _ text: String, max: Double) throws(LauncherError) -> Double {
        guard let s = Sizes.parseSeconds(text), s >= LaunchOptions.minSeconds, s <= max else {
            throw LauncherError(.usage, "--\(flag) must be a number of seconds from \(LaunchOptions.minSecondsText) to \(Int(max)), not \(shown(text))")
        }
        return s
    }
}
