import Testing

/// A word access to byte-register devices is one access: QEMU holds its big lock for a
/// whole exit, so another vCPU's access comes before or after an `outw`'s index byte and
/// data byte, never between (Examples/GuestImages/qemu/wordrace.S, two vCPUs). Before, each
/// byte took the device's lock on its own: a prober counted 13-50 CMOS bytes of 9,600
/// written into the register the other vCPU had selected, and 20-100 CRT controller reads
/// of 200,000 pairing one register's index with another's data. Without the bug no count
/// but 0 is possible, whatever the two vCPUs' timing.
@Suite("Word accesses to byte-register devices on two vCPUs on real KVM", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct WordAccessRaceTests {
    @Test("CMOS index and data in one outw; the CRT controller's index and data in one inw: never torn by the other vCPU",
          arguments: ["cmos", "crtc"])
    func notTorn(test: String) throws {
        let r = try VMMProcess.run(["run", VMMProcess.guest("wordrace.elf"), "--vcpus", "2", "--append", test, "--max-seconds", "120"])
        #expect(r.stdout == "torn: 00000000\n", "\(test)")
        #expect(r.stderr == "")
        #expect(r.status == (0x2b << 1) | 1)
    }
}
