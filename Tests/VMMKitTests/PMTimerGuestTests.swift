import Foundation
import Glibc
import Testing

/// ACPI's PM timer (port 0x608, as QEMU's `pc` machine and the FADT say) as guests read
/// it: kernels written for QEMU calibrate by it. Its snapshot side is in
/// `ACPIPowerButtonTests.pressSurvivesSnapshot`.
@Suite("ACPI PM timer on real KVM", .serialized, .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct PMTimerGuestTests {
    /// mov $0x608,%dx; in (%dx),%eax; mov %eax,%ebx; xor %eax,%eax; out %eax,(%dx) (a write:
    /// ignored); mov $0x60b,%dx; in (%dx),%al (bits 24-31: 0); test %al,%al; jnz 1f;
    /// mov $0x608,%dx; in (%dx),%eax; sub %ebx,%eax; and $0xffffff,%eax; cmp $0x800000,%eax
    /// (not behind the first read, so the write did not reset it); jae 1f; mov $0x25,%al;
    /// jmp 2f; 1: mov $0x24,%al; 2: out %al,$0xf4; hlt
    static let probe: [UInt8] = [
        0x66, 0xba, 0x08, 0x06, 0xed, 0x89, 0xc3, 0x31, 0xc0, 0xef, 0x66, 0xba,
        0x0b, 0x06, 0xec, 0x84, 0xc0, 0x75, 0x17, 0x66, 0xba, 0x08, 0x06, 0xed,
        0x29, 0xd8, 0x25, 0xff, 0xff, 0xff, 0x00, 0x3d, 0x00, 0x00, 0x80, 0x00,
        0x73, 0x04, 0xb0, 0x25, 0xeb, 0x02, 0xb0, 0x24, 0xe6, 0xf4, 0xf4,
    ]

    /// CLOCK_MONOTONIC, the timer's own clock, in nanoseconds (Swift's clocks may use
    /// another: CLOCK_BOOTTIME, CLOCK_MONOTONIC_RAW).
    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// PM timer ticks in `ns` nanoseconds, rounded up, plus one: at most this many can pass in them.
    static func ticks(_ ns: UInt64) -> UInt32 {
        UInt32(min(ns.multipliedFullWidth(by: 3_579_545).low / 1_000_000_000 + 2, UInt64(UInt32.max)))
    }

    @Test("the PM timer is a device, not unassigned I/O: its top byte reads 0 and a write does not set it back")
    func probeReads() throws {
        let probe = try VMMProcess.temp("pmtimer.bin", Self.probe)
        let r = try VMMProcess.run(["run", probe, "--load-addr", "0x100000", "--max-seconds", "20", "--strict-io"])
        #expect(r.status == (0x25 << 1) | 1, "stderr: \(r.stderr)")
        #expect(r.stderr == "")
    }

    /// The guest counts 357,954 ticks (0.1 s less 0.14 µs) from the port the FADT names:
    /// the run cannot end sooner, and every read is an exit of well over the 0.56 µs two
    /// ticks take, so a timer that stepped once a read would show as too many reads.
    @Test("a kernel for QEMU times 0.1 s by the FADT's PM timer: it takes at least 0.1 s, and more than one tick passes a read")
    func guestTimesATenth() throws {
        let start = Self.now()
        let r = try VMMProcess.run(["run", VMMProcess.guest("acpi.elf"), "--max-seconds", "60"])
        let elapsed = Self.now() - start
        #expect(r.status == 0, "stderr: \(r.stderr)")
        let prefix = "acpi: PM timer: 0.1 s in "
        let line = try #require(r.stdout.split(separator: "\n").first { $0.hasPrefix(prefix) }, "stdout: \(r.stdout)")
        #expect(line.hasSuffix(" reads, each within 24 bits, none behind the last"), "\(line)")
        let reads = try #require(Int(line.dropFirst(prefix.count).prefix(8), radix: 16))
        #expect(reads >= 1 && reads <= 357_954 / 2, "\(line)")
        #expect(elapsed >= 99_999_860, "\(elapsed) ns")
    }
}
