import CKVM

/// One entry of the in-kernel irqchip's GSI routing table (`KVM_SET_GSI_ROUTING`): a
/// `KVM_IRQ_LINE` or irqfd on `gsi` drives input `pin` of `chip`. A GSI may drive one
/// pin of each chip (the kernel refuses two on one chip).
public struct GSIRoute: Sendable, Hashable, CustomStringConvertible {
    public enum Chip: UInt32, Sendable, Hashable {
        case picMaster = 0, picSlave = 1, ioapic = 2

        /// Inputs the chip has: 8 per 8259, 24 on KVM's I/O APIC.
        public var pins: UInt32 { self == .ioapic ? 24 : 8 }
    }

    public var gsi: UInt32
    public var chip: Chip
    public var pin: UInt32

    public init(gsi: UInt32, chip: Chip, pin: UInt32) {
        (self.gsi, self.chip, self.pin) = (gsi, chip, pin)
    }

    public var description: String { "GSI \(gsi) -> \(chip) pin \(pin)" }
}

extension VirtualMachine {
    /// The routing `createIRQChip()` installs: QEMU `pc`'s on KVM
    /// (`kvm_pc_setup_irq_routing`, hw/i386/kvm/ioapic.c), where GSI 0 (ISA IRQ 0, the
    /// PIT) reaches the master 8259's input 0 and I/O APIC pin 2, as the MP table and the
    /// MADT's interrupt source override say; GSIs 1 and 3-15 reach the 8259 input and the
    /// I/O APIC pin of the same number, 16-23 the I/O APIC alone.
    ///
    /// One entry QEMU lacks: GSI 2 reaches I/O APIC pin 2 alone (QEMU routes nothing there,
    /// the 8259's input 2 being the cascade). It is the GSI the MADT gives pin 2, and what
    /// `setIRQLine(2)` meant before: the HPET's route to pin 2 (the one QEMU `pc` offers)
    /// raises it, and never reaches the 8259 or looks like the PIT's IRQ 0 there. (QEMU's
    /// HPET raises GSI 2 for that route too, which KVM drops there: its timer on pin 2 is
    /// silent under KVM.) It is listed before GSI 0's I/O APIC entry: the kernel maps each
    /// pin back to the GSI listed last for it (`setup_routing_entry`, virt/kvm/irqchip.c)
    /// to find whose ack and mask notifiers an EOI or a mask change of the pin concern, so
    /// pin 2 maps back to GSI 0, the in-kernel PIT's (whose reinjection waits for acks),
    /// as in QEMU's table, where GSI 0 is the only GSI on pin 2.
    public static let pcGSIRouting: [GSIRoute] = {
        var routes = [GSIRoute(gsi: 2, chip: .ioapic, pin: 2)]
        for gsi: UInt32 in 0..<16 where gsi != 2 {
            routes.append(GSIRoute(gsi: gsi, chip: gsi < 8 ? .picMaster : .picSlave, pin: gsi % 8))
        }
        for gsi: UInt32 in 0..<irqLines where gsi != 2 {
            routes.append(GSIRoute(gsi: gsi, chip: .ioapic, pin: gsi == 0 ? 2 : gsi))
        }
        return routes
    }()

    /// Replaces the in-kernel irqchip's GSI routing (`KVM_SET_GSI_ROUTING`) with `routes`:
    /// a GSI not in it drives nothing. Needs `createIRQChip()` (which installs
    /// `pcGSIRouting`) and KVM_CAP_IRQ_ROUTING. Refuses more than 64 routes, a pin the
    /// chip lacks and a GSI routed twice to one chip, naming the entry.
    public func setGSIRouting(_ routes: [GSIRoute]) throws(VMMError) {
        guard hasIRQChip else {
            throw .capabilityMissing(name: "an in-kernel irqchip (call createIRQChip() first)", what: "GSI routing")
        }
        guard kvm.hasExtension(KVM_CAP_IRQ_ROUTING) else {
            throw .capabilityMissing(name: "KVM_CAP_IRQ_ROUTING", what: "GSI routing")
        }
        guard routes.count <= Int(CKVM_MAX_GSI_ROUTES) else {
            throw .invalidArgument("GSI routing: \(routes.count) routes; at most \(CKVM_MAX_GSI_ROUTES)")
        }
        var table = ckvm_irq_routing()
        table.nr = UInt32(routes.count)
        var seen = Set<GSIRoute>()
        try withUnsafeMutableBytes(of: &table.entries) { (raw) throws(VMMError) in
            let entries = raw.bindMemory(to: kvm_irq_routing_entry.self)
            for (i, route) in routes.enumerated() {
                guard route.pin < route.chip.pins else {
                    throw .invalidArgument("GSI routing entry \(i) (\(route)): \(route.chip) has pins 0 to \(route.chip.pins - 1)")
                }
                guard seen.insert(GSIRoute(gsi: route.gsi, chip: route.chip, pin: 0)).inserted else {
                    throw .invalidArgument("GSI routing entry \(i) (\(route)): GSI \(route.gsi) already drives a pin of \(route.chip)")
                }
                var entry = kvm_irq_routing_entry()
                entry.gsi = route.gsi
                entry.type = UInt32(KVM_IRQ_ROUTING_IRQCHIP)
                entry.u.irqchip.irqchip = route.chip.rawValue
                entry.u.irqchip.pin = route.pin
                entries[i] = entry
            }
        }
        _ = try vmIOCTL(CKVM_SET_GSI_ROUTING, "KVM_SET_GSI_ROUTING", &table)
        gsiRouting = routes
    }
}
