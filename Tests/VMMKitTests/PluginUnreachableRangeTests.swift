import Foundation
import Testing

/// Handler claims no exit can ever reach, refused at registration (status 8, one line)
/// instead of accepted in silence: a HLT descriptor with an address, and MMIO over the
/// in-kernel irqchip's I/O APIC and local APIC, and ports over its PICs, ELCR and PIT,
/// which KVM serves without an exit.
@Suite("Plugin claims that could never run", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct PluginUnreachableRangeTests {
    static let fixture = PluginFixtures.fixture("RANGES")
    static let prefix = "vmm: plugin 'org.vmmkit.test.fixture' (\(fixture)): init failed: org.vmmkit.test.fixture 'hostile-range' (\(fixture)): "

    func run(_ config: String, _ flags: [String] = []) throws -> VMMProcess.Result {
        #expect(PluginFixtures.built)
        return try VMMProcess.run(["run", VMMProcess.guest("hello64.elf"), "--plugin", "\(Self.fixture),\(config)"] + flags)
    }

    @Test("a HLT handler whose base or length is not 0 is refused")
    func hltWithAddress() throws {
        let r = try run("hlt")
        #expect(r.status == 8)
        #expect(r.stderr == Self.prefix + "HLT handler has base 0x10 and length 0x20; a HLT has no address, so both must be 0\n")
    }

    @Test("with the in-kernel irqchip, MMIO over the local APIC page or the I/O APIC is refused, naming the range",
          arguments: [("lapic", "MMIO range [0xfee00ff8..<0xfee01008] overlaps the in-kernel local APIC [0xfee00000..<0xfee01000]"),
                      ("ioapic", "MMIO range [0xfec00000..<0xfec01000] overlaps the in-kernel I/O APIC [0xfec00000..<0xfec00100]")])
    func overInKernelIRQChip(config: String, overlap: String) throws {
        let r = try run(config)
        #expect(r.status == 8)
        #expect(r.stderr == Self.prefix + overlap
            + ": with the in-kernel irqchip KVM serves those accesses itself, so the handler would never run there\n")
    }

    @Test("with the in-kernel PIT and irqchip, a port claim over the PIT, a PIC or the ELCR is refused, naming device and port",
          arguments: [("pit", "port range [0x40..<0x41] overlaps the in-kernel PIT [0x40..<0x44] at port 0x40: with the in-kernel PIT"),
                      ("pic-partial", "port range [0x1e..<0x22] overlaps the in-kernel master PIC [0x20..<0x22] at port 0x20: "
                          + "with the in-kernel irqchip"),
                      ("elcr", "port range [0x4d0..<0x4d2] overlaps the in-kernel ELCR [0x4d0..<0x4d2] at port 0x4d0: "
                          + "with the in-kernel irqchip"),
                      ("speaker", "port range [0x61..<0x62] overlaps the in-kernel PIT's speaker port [0x61..<0x62] at port 0x61: "
                          + "with the in-kernel PIT")])
    func overInKernelPorts(config: String, overlap: String) throws {
        let r = try run(config)
        #expect(r.status == 8)
        #expect(r.stderr == Self.prefix + overlap + " KVM serves those ports itself, so the handler would never run there\n")
    }

    @Test("without the irqchip those claims load, and so does MMIO past the kernel's 0x100 bytes of I/O APIC with it")
    func reachableClaims() throws {
        let none = ["--irqchip", "none"]
        for (config, flags) in [("lapic", none), ("ioapic", none), ("ioapic-high", []), ("pit", none), ("pic-partial", none),
                                ("elcr", none), ("speaker", none)] {
            let r = try run(config, flags)
            #expect(r.status == 1, "\(config) \(flags): \(r.stderr)")
            #expect(r.stdout == "Hello from an ELF64 guest\n")
            #expect(r.stderr == "")
        }
    }
}
