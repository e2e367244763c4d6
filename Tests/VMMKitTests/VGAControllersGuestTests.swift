import Testing

/// The VGA's attribute, sequencer and graphics controllers as a text-mode kernel written
/// for QEMU programs them (Examples/GuestImages/qemu/vgactl.S), answered as QEMU's VGA
/// answers after SeaBIOS's mode 3, and kept across a snapshot.
@Suite("the VGA's attribute, sequencer and graphics controllers on real KVM", .serialized,
       .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct VGAControllersGuestTests {
    static let guest = VMMProcess.guest("vgactl.elf")

    /// A flat guest that sets the sequencer's map mask (SR2) to 5, waits past the snapshot
    /// at 0.3 s (`LauncherRestoreGuardTests`'s loop), and exits with SR2 as it reads it then.
    static let mapMaskAfterSnapshot: [UInt8] = [0x66, 0xba, 0xc4, 0x03, 0xb0, 0x02, 0xee, // mov $0x3c4, %dx; mov $2, %al; out %al, %dx
                                                0x66, 0xba, 0xc5, 0x03, 0xb0, 0x05, 0xee] // the same at 0x3c5 with 5
        + LauncherRestoreGuardTests.waitPastSnapshot
        + [0x66, 0xba, 0xc5, 0x03, 0xec, 0xe6, 0xf4, 0xf4, 0xf4] // in from 0x3c5 (the index kept); out %al, $0xf4; hlt

    func run(_ args: [String]) throws -> VMMProcess.Result { try PluginListingTests.run(args, bound: 120) }

    @Test("blinking turned off through the attribute controller, the map mask and graphics registers read back with QEMU's masks, feature control at 0x3ca; every port a device's (--strict-io)")
    func programmed() throws {
        let expected = "attribute index 20 mode 0C blink off 04 data phase reads 00\n"
            + "sequencer map mask 03 masked 0F index 02\n" + "graphics miscellaneous 0E masked 7B\n" + "feature control 10 enable 00\n"
        for extra in [[], ["--strict-io"]] {
            let r = try run(["run", Self.guest] + extra)
            #expect(r.stdout == expected)
            #expect(r.status == (0x28 << 1) | 1, "stderr: \(r.stderr)")
        }
    }

    @Test("a sequencer register and its index survive a snapshot into a new process")
    func snapshotKeepsThem() throws {
        let restored = try LauncherRestoreGuardTests.restoredAfterSnapshot("vgactl", Self.mapMaskAfterSnapshot)
        #expect(restored.status == (5 << 1) | 1, "stderr: \(restored.stderr)")
    }
}
