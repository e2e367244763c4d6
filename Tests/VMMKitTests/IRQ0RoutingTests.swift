import Testing
import VMMKit
import VMMLoader

/// IRQ 0 on I/O APIC pin 2, as QEMU's `pc` on KVM has it (`VirtualMachine.pcGSIRouting`)
/// and as its firmware tables say: a kernel written for QEMU that programs pin 2 for the
/// PIT without reading a table gets its ticks (Examples/GuestImages/qemu/irq0pin2.S), the
/// MP table and the MADT name pin 2 (`FirmwareTablesTests` has guests read them too).
@Suite("IRQ 0 on I/O APIC pin 2")
struct IRQ0RoutingTests {
    @Test("a QEMU-style kernel masks the PICs, programs I/O APIC pin 2 for the PIT and counts its interrupts there, none on pin 0",
          .enabled(if: KVMAvailability.present, KVMAvailability.reason))
    func pitOnPin2() throws {
        let r = try VMMProcess.run(["run", VMMProcess.guest("irq0pin2.elf"), "--max-seconds", "60"])
        #expect(r.stdout == "irq0: PIT interrupts on I/O APIC pin 2 00000005, on pin 0 00000000\n", "\(r.stdout)")
        #expect(r.stderr == "")
        #expect(r.status == (0x23 << 1) | 1)
    }

    static func u16(_ b: [UInt8], _ at: Int) -> Int { Int(b[at]) | Int(b[at + 1]) << 8 }
    static func u32(_ b: [UInt8], _ at: Int) -> Int { u16(b, at) | u16(b, at + 2) << 16 }

    @Test("the MP table puts ISA IRQ 0 on pin 2, has no entry for IRQ 2 and none on pin 0, as SeaBIOS's with irq0-override; the MADT overrides ISA IRQ 0 to GSI 2 (flags 0) before the SCI's")
    func tables() throws {
        let firmware = try PCFirmware(processors: 2)
        let mp = firmware.mpTable
        // Entries after the 16-byte pointer and the 44-byte header: 20 bytes for a
        // processor (type 0), 8 for the others; type 3 is an I/O interrupt entry.
        var at = 16 + 44, isa: [(irq: Int, pin: Int)] = []
        for _ in 0..<Self.u16(mp, 16 + 34) {
            if mp[at] == 3 { isa.append((Int(mp[at + 5]), Int(mp[at + 7]))) }
            at += mp[at] == 0 ? 20 : 8
        }
        #expect(at == mp.count)
        #expect(isa.map { [$0.irq, $0.pin] } == [[0, 2]] + (1..<16).filter { $0 != 2 }.map { [$0, $0] })

        let acpi = firmware.acpiTables, base = Int(PCFirmware.acpiAddress)
        let rsdt = Self.u32(acpi, 16) - base
        let madt = try #require((0..<(Self.u32(acpi, rsdt + 4) - 36) / 4).map { Self.u32(acpi, rsdt + 36 + 4 * $0) - base }
            .first { acpi[$0..<$0 + 4].elementsEqual("APIC".utf8) })
        var overrides: [[Int]] = [], entry = madt + 44
        while entry < madt + Self.u32(acpi, madt + 4) {
            if acpi[entry] == 2 { // bus, source, GSI, flags
                overrides.append([Int(acpi[entry + 2]), Int(acpi[entry + 3]), Self.u32(acpi, entry + 4), Self.u16(acpi, entry + 8)])
            }
            entry += Int(acpi[entry + 1])
        }
        #expect(overrides == [[0, 0, 2, 0], [0, 9, 9, 0xd]])
    }

    @Test("the routing QEMU's kvm_pc_setup_irq_routing installs: GSI 0 to the master PIC's input 0 and I/O APIC pin 2, no GSI on the cascade; GSI 2 to pin 2 alone, listed before GSI 0's pin 2")
    func routingTable() {
        let routes = VirtualMachine.pcGSIRouting
        func to(_ gsi: UInt32) -> [String] { routes.filter { $0.gsi == gsi }.map { "\($0.chip) \($0.pin)" } }
        #expect(to(0) == ["picMaster 0", "ioapic 2"])
        #expect(to(2) == ["ioapic 2"])
        #expect(to(9) == ["picSlave 1", "ioapic 9"])
        #expect(to(16) == ["ioapic 16"] && to(23) == ["ioapic 23"] && to(24).isEmpty)
        #expect(!routes.contains { $0.chip == .picMaster && $0.pin == 2 })
        #expect(routes.filter { $0.chip == .ioapic && $0.pin == 0 }.isEmpty)
        let pin2 = routes.enumerated().filter { $0.element.chip == .ioapic && $0.element.pin == 2 }.map(\.element.gsi)
        #expect(pin2 == [2, 0], "the kernel maps pin 2 back to the GSI listed last for it: GSI 0, the PIT's, as in QEMU's table")
        #expect(routes.count == 15 + 23 + 1) // the 8259 inputs but the cascade, QEMU's 23 pins, GSI 2
    }

    @Test("setGSIRouting refuses a VM without the irqchip, a pin the chip lacks, a GSI twice on one chip and more routes than fit, naming the entry",
          .enabled(if: KVMAvailability.present, KVMAvailability.reason))
    func routingChecks() throws {
        let plain = try TestGuest("hlt")
        #expect(throws: VMMError.capabilityMissing(name: "an in-kernel irqchip (call createIRQChip() first)", what: "GSI routing")) {
            try plain.vm.setGSIRouting(VirtualMachine.pcGSIRouting)
        }
        let guest = try TestGuest("hlt", irqchip: true)
        #expect(throws: VMMError.invalidArgument("GSI routing entry 1 (GSI 5 -> ioapic pin 24): ioapic has pins 0 to 23")) {
            try guest.vm.setGSIRouting([GSIRoute(gsi: 4, chip: .ioapic, pin: 4), GSIRoute(gsi: 5, chip: .ioapic, pin: 24)])
        }
        #expect(throws: VMMError.invalidArgument("GSI routing entry 0 (GSI 3 -> picSlave pin 8): picSlave has pins 0 to 7")) {
            try guest.vm.setGSIRouting([GSIRoute(gsi: 3, chip: .picSlave, pin: 8)])
        }
        #expect(throws: VMMError.invalidArgument("GSI routing entry 1 (GSI 4 -> ioapic pin 5): GSI 4 already drives a pin of ioapic")) {
            try guest.vm.setGSIRouting([GSIRoute(gsi: 4, chip: .ioapic, pin: 4), GSIRoute(gsi: 4, chip: .ioapic, pin: 5)])
        }
        #expect(throws: VMMError.invalidArgument("GSI routing: 65 routes; at most 64")) {
            try guest.vm.setGSIRouting((0..<65).map { GSIRoute(gsi: $0, chip: .ioapic, pin: $0 % 24) })
        }
        // The kernel takes the table again (as a VMM reinstalls it), and an empty one.
        try guest.vm.setGSIRouting(VirtualMachine.pcGSIRouting)
        try guest.vm.setGSIRouting([])
    }
}
