import Glibc
@testable import Launcher
import Testing

/// The RTC's calendar arithmetic (`CivilTime`), which stands in for gmtime_r and timegm
/// on vCPU threads (their first call opens /etc/localtime, outside the seccomp list).
@Suite("the RTC's calendar arithmetic")
struct CivilTimeTests {
    @Test("agrees with glibc's gmtime_r from 1700 to 2300, leap days and century years included, and converts back")
    func matchesGlibc() {
        var samples: [Int64] = [0, -1, 86_399, 86_400, 951_782_400, 951_868_799, 4_107_542_399, -2_208_988_800, 7_258_118_400]
        var x: UInt64 = 0x9e37_79b9_7f4a_7c15
        for _ in 0..<20_000 {
            x = x &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            samples.append(Int64(bitPattern: x >> 1) % 18_934_560_000 - 8_520_000_000) // about 1700..2300
        }
        for s in samples {
            var t = time_t(s), parts = tm()
            gmtime_r(&t, &parts)
            let c = CivilTime(seconds: s)
            let expected = [Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday), Int(parts.tm_hour),
                            Int(parts.tm_min), Int(parts.tm_sec), Int(parts.tm_wday)]
            #expect([c.year, c.month, c.day, c.hour, c.minute, c.second, c.weekday] == expected, "\(s)")
            #expect(c.seconds == s, "\(s)")
        }
    }
}
