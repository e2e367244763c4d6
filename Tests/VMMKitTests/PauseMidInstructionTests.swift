import Foundation
import Testing

/// Pausing and snapshotting a guest whose instructions chain many exits: `rep movsd`
/// from MMIO is an exit a dword.
@Suite("pause and snapshot inside string instructions over MMIO", .serialized, .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct PauseMidInstructionTests {
    /// A flat 64-bit guest: copies the HPET's first 1 KiB (`rep movsd` from 0xfed00000)
    /// as a reference, then again and again, comparing each copy with it (all but the
    /// main counter); a difference ends it with debug-exit 1 (status 3), 2^31 rounds
    /// with debug-exit 0 (status 1).
    static let copier: [UInt8] = [
        0xbe, 0x00, 0x00, 0xd0, 0xfe, 0xbf, 0x00, 0x00, 0x30, 0x00, 0xb9, 0x00, 0x01, 0x00, 0x00, 0xfc, 0xf3, 0xa5,
        0x41, 0xb9, 0xff, 0xff, 0xff, 0x7f, 0xbe, 0x00, 0x00, 0xd0, 0xfe, 0xbf, 0x00, 0x00, 0x20, 0x00, 0xb9, 0x00,
        0x01, 0x00, 0x00, 0xf3, 0xa5, 0xbe, 0x00, 0x00, 0x20, 0x00, 0xbf, 0x00, 0x00, 0x30, 0x00, 0xb9, 0x3c, 0x00,
        0x00, 0x00, 0xf3, 0xa7, 0x0f, 0x85, 0x25, 0x00, 0x00, 0x00, 0xbe, 0xf8, 0x00, 0x20, 0x00, 0xbf, 0xf8, 0x00,
        0x30, 0x00, 0xb9, 0xc2, 0x00, 0x00, 0x00, 0xf3, 0xa7, 0x0f, 0x85, 0x0e, 0x00, 0x00, 0x00, 0x41, 0xff, 0xc9,
        0x0f, 0x85, 0xb8, 0xff, 0xff, 0xff, 0xb0, 0x00, 0xe6, 0xf4, 0xf4, 0xb0, 0x01, 0xe6, 0xf4, 0xf4,
    ]

    @Test("every pause reaches an instruction boundary, so each snapshot is taken and the resumed guest reads every MMIO value right (a pause parked after 64 of a copy's 256 exits: snapshots failed, and the failed one's KVM_RUN fed the resumed guest stale data, 5 runs of 5)")
    func snapshotsDuringCopies() throws {
        let socket = ControlAPITests.socketPath("midinsn")
        let image = try VMMProcess.temp("hpetcopy.bin", Self.copier)
        let vmm = Spawned(VMMProcess.binary, ["run", image, "--load-addr", "0x100000", "--serial", "none", "--api-sock", socket, "--max-seconds", "600"])
        defer { vmm.kill() }
        #expect(eventually { (try? ControlAPITests.ctl([socket, "info"]).status) == 0 })
        let dir = try VMMProcess.scratch("midinsn", "snaps")
        for i in 0..<8 {
            #expect(try ControlAPITests.ctl([socket, "pause"]).status == 0)
            let saved = try ControlAPITests.ctl([socket, "snapshot", dir + "/\(i)"])
            #expect(saved.status == 0, "snapshot \(i): \(saved.stdout)\(saved.stderr)")
            _ = try? VMMProcess.run(binary: "/bin/rm", ["-rf", dir + "/\(i)"])
            let before = try ControlAPITests.ioExits(socket, kind: "mmio")
            #expect(try ControlAPITests.ctl([socket, "resume"]).status == 0)
            #expect(try eventually { try ControlAPITests.ioExits(socket, kind: "mmio") > before + 1000 }, "the guest copies again")
        }
        #expect(try ControlAPITests.ctl([socket, "stop"]).status == 0)
        let run = vmm.wait()
        #expect(run.status == 0, "the guest saw no wrong value (3 if it did): \(run.stderr)")
    }
}
