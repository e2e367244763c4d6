import CKVM
import Testing
@testable import VMMKit
@testable import VMMSnapshot

/// The irqchip's GSI routing goes with a snapshot (KVM cannot report it): a restored VM
/// routes as the saved one did, and a snapshot written before VMMKit routed GSIs as QEMU's
/// `pc` (no `gsiRouting` record) keeps KVM's default, IRQ 0 on I/O APIC pin 0, which its
/// guest's MP table and MADT said and its guest programmed. Restored with the new routing,
/// such a guest's timer went to pin 2, which it had left masked: no timer after the restore.
@Suite("a snapshot keeps the GSI routing", .serialized, .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct SnapshotGSIRoutingTests {
    /// The I/O APIC's interrupt request register after a pulse of GSI 0, on `vm`.
    static func pinsRaisedByIRQ0(_ vm: VirtualMachine) throws -> UInt32 {
        try vm.setIRQLine(0, level: true)
        defer { try? vm.setIRQLine(0, level: false) }
        var chip = kvm_irqchip()
        chip.chip_id = UInt32(KVM_IRQCHIP_IOAPIC)
        try stateIOCTL(vm.fd, CKVM_GET_IRQCHIP, "KVM_GET_IRQCHIP", &chip)
        return chip.chip.ioapic.irr
    }

    @Test("a VM's routing is saved in vm.state and restored; a state without it (an older snapshot) restores KVM's default, GSI 0 on I/O APIC pin 0")
    func routingRestored() throws {
        let kvm = try KVM.open()
        let vm = try kvm.createVM()
        defer { vm.close() }
        try vm.createIRQChip()
        _ = try vm.createVCPU()
        #expect(try Self.pinsRaisedByIRQ0(vm) == 1 << 2)
        let state = try VMState.capture(vm, dispatcher: nil)
        #expect(state.gsiRouting == VirtualMachine.pcGSIRouting)

        var decoded = VMState(irqchip: nil, pit: nil, clock: nil, regions: [], vcpus: [])
        try decoded.decodeDevices(state.encodedDevices(), path: "vm.state")
        #expect(decoded.gsiRouting == VirtualMachine.pcGSIRouting)

        var restoredState = state
        restoredState.regions = []
        let restored = try restoredState.makeVM(on: kvm)
        defer { restored.close() }
        #expect(restored.gsiRouting == VirtualMachine.pcGSIRouting)
        #expect(try Self.pinsRaisedByIRQ0(restored) == 1 << 2, "IRQ 0 on pin 2, as saved")

        var older = restoredState
        older.gsiRouting = nil
        #expect(!older.encodedDevices().isEmpty)
        var olderDecoded = VMState(irqchip: nil, pit: nil, clock: nil, regions: [], vcpus: [])
        try olderDecoded.decodeDevices(older.encodedDevices(), path: "vm.state")
        #expect(olderDecoded.gsiRouting == nil)
        let legacy = try older.makeVM(on: kvm)
        defer { legacy.close() }
        #expect(legacy.gsiRouting == nil)
        #expect(try Self.pinsRaisedByIRQ0(legacy) == 1 << 0, "IRQ 0 on pin 0, as the older snapshot's guest was told")
    }

    /// `vm.state` bytes: the three irqchip records, then a gsiRouting record of `body`.
    static func state(routing body: [UInt32], chips: Bool = true, twice: Bool = false) -> [UInt8] {
        var w = ByteWriter()
        if chips {
            for id in 0..<3 as Range<UInt32> {
                var chip = kvm_irqchip()
                chip.chip_id = id
                w.record(.irqchip) { $0.appendPOD(chip) }
            }
        }
        for _ in 0..<(twice ? 2 : 1) {
            w.record(.gsiRouting) { w in for v in body { w.append(v) } }
        }
        return w.bytes
    }

    @Test("a damaged gsiRouting record is refused naming the record and the value")
    func hostileRecord() {
        let cases: [([UInt8], String)] = [
            (Self.state(routing: [65] + [UInt32](repeating: 0, count: 65 * 3)), "counts 65 routes but holds 780 bytes (12 each, at most 64)"),
            (Self.state(routing: [2, 0, 2, 2]), "counts 2 routes but holds 12 bytes"),
            (Self.state(routing: [0xffff_ffff]), "counts 4294967295 routes"),
            (Self.state(routing: [1, 0, 3, 0]), "route 0: GSI 0 to chip 3 pin 0"),
            (Self.state(routing: [1, 0, 2, 24]), "route 0: GSI 0 to chip 2 pin 24"),
            (Self.state(routing: [2, 0, 2, 2, 1, 0, 8]), "route 1: GSI 1 to chip 0 pin 8"),
            (Self.state(routing: [1, 4096, 2, 2]), "route 0: GSI 4096 to chip 2 pin 2 (GSI at most 4095"),
            (Self.state(routing: [1, 0, 2, 2], chips: false), "a GSI routing without the in-kernel irqchip"),
            (Self.state(routing: [1, 0, 2, 2], twice: true), "appears twice"),
        ]
        for (bytes, why) in cases {
            var state = VMState(irqchip: nil, pit: nil, clock: nil, regions: [], vcpus: [])
            do {
                try state.decodeDevices(bytes, path: "vm.state")
                Issue.record("accepted: \(why)")
            } catch {
                #expect("\(error)".hasPrefix("snapshot vm.state: ") && "\(error)".contains(why), "\(error)")
            }
        }
    }
}
