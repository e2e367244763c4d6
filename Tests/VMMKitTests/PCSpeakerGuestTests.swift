import Testing

/// Port 0x61 with the in-kernel PIT: channel 2's gate and output, the refresh bit and the
/// speaker bit, as QEMU's `pc` has them (Examples/GuestImages/qemu/pcspk.S, a delay timed
/// on channel 2 as Linux's TSC calibration does), served by KVM without an exit and kept
/// across a snapshot.
@Suite("port 0x61 (PIT channel 2's gate and output, the speaker bit) on real KVM", .serialized,
       .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct PCSpeakerGuestTests {
    static let guest = VMMProcess.guest("pcspk.elf")

    /// A flat guest that turns the gate and the speaker bit on, waits past the snapshot
    /// at 0.3 s (`LauncherRestoreGuardTests`'s loop), and exits with port 0x61's low two bits.
    static let speakerAfterSnapshot: [UInt8] = [0xb0, 0x03, 0xe6, 0x61] // mov $3, %al; out %al, $0x61
        + LauncherRestoreGuardTests.waitPastSnapshot
        + [0xe4, 0x61, 0x24, 0x03, 0xe6, 0xf4, 0xf4, 0xf4] // in $0x61, %al; and $3, %al; out %al, $0xf4; hlt

    func run(_ args: [String]) throws -> VMMProcess.Result { try PluginListingTests.run(args, bound: 120) }

    @Test("a 10 ms delay on channel 2: the gate set through 0x61, the output low while counting and high no sooner than 9 ms, the refresh bit toggling, the speaker bit read back; no exit to user space (--strict-io)")
    func delayOnChannel2() throws {
        let expected = "after reset: gate and speaker 00\n" + "counting: 01\n" + "output 20, after 9 ms or more\n"
            + "refresh bit toggles\n" + "speaker on: 03\n" + "gate off: 00\n"
        for extra in [[], ["--strict-io"]] {
            let r = try run(["run", Self.guest] + extra)
            #expect(r.stdout == expected)
            #expect(r.status == (0x27 << 1) | 1, "stderr: \(r.stderr)")
        }
    }

    @Test("the gate and speaker bits survive a snapshot into a new process (the PIT state's speaker flag)")
    func snapshotKeepsTheBits() throws {
        let restored = try LauncherRestoreGuardTests.restoredAfterSnapshot("pcspk", Self.speakerAfterSnapshot)
        #expect(restored.status == (3 << 1) | 1, "stderr: \(restored.stderr)")
    }
}
