import CKVM
import VMMKit

/// The binary state files: a sequence of records (u32 tag, u32 length, body), each
/// body the kernel's struct or a counted array; Docs/SnapshotFormat.md.
extension VCPUState {
    static let maxMSRs = 4096
    static let maxXSAVEBytes = 1 << 20

    func encoded() -> [UInt8] {
        var w = ByteWriter()
        w.record(.regs) { $0.appendPOD(registers) }
        w.record(.sregs) { $0.appendPOD(specialRegisters) }
        if let xsave { w.record(.xsave) { w in xsave.withUnsafeBytes { w.append($0) } } }
        if let fpu { w.record(.fpu) { $0.appendPOD(fpu) } }
        if let xcrs { w.record(.xcrs) { $0.appendPOD(xcrs) } }
        if let debugRegisters { w.record(.debugRegs) { $0.appendPOD(debugRegisters) } }
        w.record(.msrs) { w in
            w.append(UInt32(msrs.count))
            for m in msrs { w.append(m.index); w.append(UInt32(0)); w.append(m.value) }
        }
        if let lapic { w.record(.lapic) { $0.appendPOD(lapic) } }
        w.record(.events) { $0.appendPOD(events) }
        w.record(.mpState) { $0.append(mpState) }
        w.record(.cpuid) { w in
            w.append(UInt32(cpuid.count))
            for e in cpuid { w.appendPOD(e) }
        }
        if let tscKHz { w.record(.tscKHz) { $0.append(tscKHz) } }
        // Only when set, so that a snapshot without a waiting vector stays readable by
        // readers from before the record.
        if interruptWindowRequested { w.record(.interruptWindow) { $0.append(UInt32(1)) } }
        return w.bytes
    }

    static func decode(_ bytes: [UInt8], id: UInt32, path: String) throws(SnapshotError) -> VCPUState {
        var r = ByteReader(bytes, path: path)
        var seen = Set<UInt32>()
        var regs: kvm_regs?, sregs: kvm_sregs?, events: kvm_vcpu_events?, mp: UInt32?, cpuid: [CPUIDEntry]?, msrs: [MSR]?
        var state = VCPUState(id: id, registers: kvm_regs(), specialRegisters: kvm_sregs(), xsave: nil, fpu: nil, xcrs: nil,
                              debugRegisters: nil, msrs: [], lapic: nil, events: kvm_vcpu_events(), mpState: 0, cpuid: [], tscKHz: nil)
        while !r.isAtEnd {
            var (tag, body, at) = try r.record()
            guard seen.insert(tag).inserted else { throw .invalid(path: path, "record \(StateTag.name(tag)) at byte \(at) appears twice") }
            guard let known = StateTag(rawValue: tag) else {
                throw .invalid(path: path, "unknown record tag \(tag) at byte \(at) (written by a newer format version?)")
            }
            switch known {
            case .regs: regs = try body.exactPOD(kvm_regs(), tag)
            case .sregs: sregs = try body.exactPOD(kvm_sregs(), tag)
            case .xsave:
                let n = body.remaining
                guard n >= MemoryLayout<kvm_xsave>.size, n <= maxXSAVEBytes, n % 4 == 0 else {
                    throw .invalid(path: path, "xsave record at byte \(at) has \(n) bytes (want a multiple of 4 in 4096...\(maxXSAVEBytes))")
                }
                state.xsave = try body.readBytes(n)
            case .fpu: state.fpu = try body.exactPOD(kvm_fpu(), tag)
            case .xcrs:
                let x = try body.exactPOD(kvm_xcrs(), tag)
                guard x.nr_xcrs <= UInt32(KVM_MAX_XCRS) else { throw .invalid(path: path, "xcrs record at byte \(at) counts \(x.nr_xcrs) XCRs (at most \(KVM_MAX_XCRS))") }
                state.xcrs = x
            case .debugRegs: state.debugRegisters = try body.exactPOD(kvm_debugregs(), tag)
            case .msrs:
                let count = Int(try body.read(UInt32.self))
                guard count <= maxMSRs, body.remaining == count * 16 else {
                    throw .invalid(path: path, "msrs record at byte \(at) counts \(count) MSRs but holds \(body.remaining) bytes (16 each, at most \(maxMSRs))")
                }
                var list: [MSR] = []
                for _ in 0..<count {
                    let index: UInt32 = try body.read()
                    _ = try body.read(UInt32.self)
                    list.append(MSR(index: index, value: try body.read()))
                }
                msrs = list
            case .lapic: state.lapic = try body.exactPOD(kvm_lapic_state(), tag)
            case .events: events = try body.exactPOD(kvm_vcpu_events(), tag)
            case .mpState:
                let value: UInt32 = try body.read()
                guard value <= 8 else { throw .invalid(path: path, "mp_state \(value) at byte \(at) is not a KVM_MP_STATE value") }
                mp = value
            case .cpuid:
                let count = Int(try body.read(UInt32.self))
                let size = MemoryLayout<CPUIDEntry>.size
                guard count <= Int(CKVM_MAX_CPUID_ENTRIES), body.remaining == count * size else {
                    throw .invalid(path: path, "cpuid record at byte \(at) counts \(count) entries but holds \(body.remaining) bytes (\(size) each, at most \(CKVM_MAX_CPUID_ENTRIES))")
                }
                var list: [CPUIDEntry] = []
                for _ in 0..<count { list.append(try body.readPOD(CPUIDEntry.self, zero: CPUIDEntry())) }
                cpuid = list
            case .tscKHz: state.tscKHz = try body.read(UInt32.self)
            case .interruptWindow:
                let value: UInt32 = try body.read()
                guard value == 1 else { throw .invalid(path: path, "interruptWindow record at byte \(at) holds \(value) (only 1 is written)") }
                state.interruptWindowRequested = true
            case .irqchip, .pit, .clock, .gsiRouting:
                throw .invalid(path: path, "record \(known) at byte \(at) belongs in vm.state, not a vCPU's file")
            }
            try body.expectEnd(tag)
        }
        guard let regs else { throw .invalid(path: path, "no regs record") }
        guard let sregs else { throw .invalid(path: path, "no sregs record") }
        guard let events else { throw .invalid(path: path, "no events record") }
        guard let mp else { throw .invalid(path: path, "no mpState record") }
        guard let cpuid else { throw .invalid(path: path, "no cpuid record") }
        guard let msrs else { throw .invalid(path: path, "no msrs record") }
        guard state.xsave != nil || state.fpu != nil else { throw .invalid(path: path, "neither an xsave nor an fpu record") }
        state.registers = regs
        state.specialRegisters = sregs
        state.events = events
        state.mpState = mp
        state.cpuid = cpuid
        state.msrs = msrs
        return state
    }

    /// What the writer never writes for this VM, named, or nil: state a restore would
    /// otherwise leave at the fresh vCPU's power-on values without a word (a LAPIC's
    /// timer and pending interrupts, XCR0 and with it AVX, the debug registers).
    /// `irqchip`: the VM has an in-kernel irqchip (each vCPU's LAPIC is then saved);
    /// `capabilities`: the manifest's, which say which optional records every vCPU has.
    func missingState(irqchip: Bool, capabilities: Set<String>) -> String? {
        if irqchip != (lapic != nil) { return irqchip ? "no lapic record, though the VM has an in-kernel irqchip" : "a lapic record, though the VM has no in-kernel irqchip" }
        for (cap, present, record) in [(StateCapability.xsave, xsave != nil, "xsave"), (.xcrs, xcrs != nil, "xcrs"),
                                       (.debugRegs, debugRegisters != nil, "debugRegs")]
            where capabilities.contains(cap.rawValue) != present {
            return present ? "a \(record) record, though the manifest does not list \(cap.rawValue)"
                : "no \(record) record, though the manifest lists \(cap.rawValue)"
        }
        if let xcrs, xcrs.nr_xcrs == 0 { return "an xcrs record holding no XCR (XCR0 is always saved)" }
        var seen = Set<UInt32>()
        for m in msrs where !seen.insert(m.index).inserted { return "MSR \(hex(m.index)) appears twice" }
        return nil
    }
}

extension VMState {
    func encodedDevices() -> [UInt8] {
        var w = ByteWriter()
        for chip in irqchip ?? [] { w.record(.irqchip) { $0.appendPOD(chip) } }
        if let gsiRouting {
            w.record(.gsiRouting) { w in
                w.append(UInt32(gsiRouting.count))
                for r in gsiRouting { w.append(r.gsi); w.append(r.chip.rawValue); w.append(r.pin) }
            }
        }
        if let pit { w.record(.pit) { $0.appendPOD(pit) } }
        if let clock { w.record(.clock) { $0.appendPOD(clock) } }
        return w.bytes
    }

    /// Fills irqchip, PIT and clock from `vm.state`.
    mutating func decodeDevices(_ bytes: [UInt8], path: String) throws(SnapshotError) {
        var r = ByteReader(bytes, path: path)
        var chips: [kvm_irqchip] = []
        while !r.isAtEnd {
            var (tag, body, at) = try r.record()
            switch StateTag(rawValue: tag) {
            case .irqchip:
                let chip = try body.exactPOD(kvm_irqchip(), tag)
                guard chip.chip_id == UInt32(chips.count), chips.count < 3 else {
                    throw .invalid(path: path, "irqchip record at byte \(at) is chip \(chip.chip_id); expected chip \(chips.count) (PIC master, PIC slave, IOAPIC in order)")
                }
                chips.append(chip)
            case .gsiRouting:
                guard gsiRouting == nil else { throw .invalid(path: path, "gsiRouting record at byte \(at) appears twice") }
                gsiRouting = try Self.decodeRouting(&body, at: at, path: path)
            case .pit:
                guard pit == nil else { throw .invalid(path: path, "pit record at byte \(at) appears twice") }
                pit = try body.exactPOD(kvm_pit_state2(), tag)
            case .clock:
                guard clock == nil else { throw .invalid(path: path, "clock record at byte \(at) appears twice") }
                clock = try body.exactPOD(kvm_clock_data(), tag)
            default:
                throw .invalid(path: path, "record \(StateTag.name(tag)) at byte \(at) does not belong in vm.state")
            }
            try body.expectEnd(tag)
        }
        guard chips.isEmpty || chips.count == 3 else { throw .invalid(path: path, "\(chips.count) irqchip records; an in-kernel irqchip has 3") }
        guard pit == nil || chips.count == 3 else { throw .invalid(path: path, "a PIT without the in-kernel irqchip") }
        guard gsiRouting == nil || chips.count == 3 else { throw .invalid(path: path, "a GSI routing without the in-kernel irqchip") }
        irqchip = chips.isEmpty ? nil : chips
    }

    /// KVM's bound on GSIs (KVM_MAX_IRQ_ROUTES on x86).
    static let maxGSI: UInt32 = 4095

    /// `u32 count` (at most `CKVM_MAX_GSI_ROUTES`), then per route `u32 gsi, u32 chip, u32
    /// pin`, each bounded; `setGSIRouting` refuses a GSI on one chip twice at the restore.
    static func decodeRouting(_ body: inout ByteReader, at: Int, path: String) throws(SnapshotError) -> [GSIRoute] {
        let count = Int(try body.read(UInt32.self))
        guard count <= Int(CKVM_MAX_GSI_ROUTES), body.remaining == count * 12 else {
            throw .invalid(path: path, "gsiRouting record at byte \(at) counts \(count) routes but holds \(body.remaining) bytes (12 each, at most \(CKVM_MAX_GSI_ROUTES))")
        }
        var routes: [GSIRoute] = []
        for i in 0..<count {
            let gsi: UInt32 = try body.read(), chipID: UInt32 = try body.read(), pin: UInt32 = try body.read()
            guard gsi <= maxGSI, let chip = GSIRoute.Chip(rawValue: chipID), pin < chip.pins else {
                throw .invalid(path: path, "gsiRouting record at byte \(at), route \(i): GSI \(gsi) to chip \(chipID) pin \(pin) (GSI at most \(maxGSI), chip 0-2, pin below 8, or 24 on the I/O APIC)")
            }
            routes.append(GSIRoute(gsi: gsi, chip: chip, pin: pin))
        }
        return routes
    }
}

extension ByteReader {
    /// A record body that is exactly one kernel struct.
    mutating func exactPOD<T>(_ zero: T, _ tag: UInt32) throws(SnapshotError) -> T {
        guard remaining == MemoryLayout<T>.size else {
            throw fail("record \(StateTag.name(tag)) holds \(remaining) bytes; \(T.self) is \(MemoryLayout<T>.size)")
        }
        return try readPOD(T.self, zero: zero)
    }
}
