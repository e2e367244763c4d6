import CKVM
import Glibc
import VMMKit

extension VCPUState {
    /// Reads every piece of state of a vCPU that is not running (paused, stopped or
    /// never started) and has no I/O pending (`VCPU.completePendingIO()`).
    /// `msrIndices` is `KVM_GET_MSR_INDEX_LIST`; MSRs this vCPU cannot read are skipped.
    public static func capture(_ vcpu: VCPU, kvm: KVM, msrIndices: [UInt32], hasIRQChip: Bool) throws(SnapshotError) -> VCPUState {
        let fd = vcpu.fd
        guard fd >= 0 else { throw .refused("vCPU \(vcpu.id) is not a KVM vCPU") }
        do {
            var state = VCPUState(
                id: vcpu.id, registers: try vcpu.registers(), specialRegisters: try vcpu.specialRegisters(),
                xsave: nil, fpu: nil, xcrs: nil, debugRegisters: nil, msrs: [], lapic: nil,
                events: try vcpu.events(), mpState: 0, cpuid: [], tscKHz: nil)
            if kvm.hasExtension(KVM_CAP_XSAVE) {
                state.xsave = try captureXSAVE(fd, kvm: kvm)
            } else {
                state.fpu = try vcpu.fpu()
            }
            if kvm.hasExtension(KVM_CAP_XCRS) {
                var x = kvm_xcrs()
                try stateIOCTL(fd, CKVM_GET_XCRS, "KVM_GET_XCRS", &x)
                state.xcrs = x
            }
            if kvm.hasExtension(KVM_CAP_DEBUGREGS) {
                var d = kvm_debugregs()
                try stateIOCTL(fd, CKVM_GET_DEBUGREGS, "KVM_GET_DEBUGREGS", &d)
                state.debugRegisters = d
            }
            state.msrs = try captureMSRs(fd, msrIndices)
            if hasIRQChip {
                var l = kvm_lapic_state()
                try stateIOCTL(fd, CKVM_GET_LAPIC, "KVM_GET_LAPIC", &l)
                state.lapic = l
            }
            state.mpState = try vcpu.mpState()
            state.interruptWindowRequested = vcpu.requestInterruptWindow
            state.cpuid = try captureCPUID(fd)
            if kvm.hasExtension(KVM_CAP_GET_TSC_KHZ) {
                let khz = ckvm_ioctl_value(fd, CKVM_GET_TSC_KHZ, 0)
                if khz > 0 { state.tscKHz = UInt32(khz) }
            }
            return state
        } catch let error as SnapshotError {
            throw error
        } catch let error as VMMError {
            throw .system(error)
        } catch {
            throw .refused("vCPU \(vcpu.id): \(error)")
        }
    }

    private static func captureXSAVE(_ fd: Int32, kvm: KVM) throws(SnapshotError) -> [UInt8] {
        let size = max(Int(kvm.checkExtension(KVM_CAP_XSAVE2)), MemoryLayout<kvm_xsave>.size)
        var bytes = [UInt8](repeating: 0, count: size)
        let request = kvm.hasExtension(KVM_CAP_XSAVE2) ? CKVM_GET_XSAVE2 : CKVM_GET_XSAVE
        try withMutableBytes(&bytes) { raw throws(SnapshotError) in
            try stateIOCTL(fd, request, request == CKVM_GET_XSAVE2 ? "KVM_GET_XSAVE2" : "KVM_GET_XSAVE", raw: raw.baseAddress!)
        }
        return bytes
    }

    /// `KVM_GET_MSRS` in batches; an MSR the kernel lists but this vCPU cannot read
    /// (the batch stops short at it) is left out, as QEMU and Firecracker do.
    private static func captureMSRs(_ fd: Int32, _ indices: [UInt32]) throws(SnapshotError) -> [MSR] {
        var result: [MSR] = []
        var next = 0
        let batch = UnsafeMutablePointer<ckvm_msrs>.allocate(capacity: 1)
        defer { batch.deallocate() }
        while next < indices.count {
            let chunk = Array(indices[next..<min(indices.count, next + Int(CKVM_MAX_MSR_ENTRIES))])
            batch.initialize(to: ckvm_msrs())
            batch.pointee.nmsrs = UInt32(chunk.count)
            withUnsafeMutableBytes(of: &batch.pointee.entries) { raw in
                let entries = raw.bindMemory(to: kvm_msr_entry.self)
                for (i, index) in chunk.enumerated() { entries[i] = kvm_msr_entry(index: index, reserved: 0, data: 0) }
            }
            let got = Int(try stateIOCTL(fd, CKVM_GET_MSRS, "KVM_GET_MSRS", raw: UnsafeMutableRawPointer(batch)))
            withUnsafeBytes(of: &batch.pointee.entries) { raw in
                for e in raw.bindMemory(to: kvm_msr_entry.self).prefix(min(got, chunk.count)) {
                    result.append(MSR(index: e.index, value: e.data))
                }
            }
            next += min(got, chunk.count) + (got < chunk.count ? 1 : 0)
        }
        return result
    }

    static func captureCPUID(_ fd: Int32) throws(SnapshotError) -> [CPUIDEntry] {
        let buffer = UnsafeMutablePointer<ckvm_cpuid>.allocate(capacity: 1)
        defer { buffer.deallocate() }
        buffer.initialize(to: ckvm_cpuid())
        buffer.pointee.nent = UInt32(CKVM_MAX_CPUID_ENTRIES)
        try stateIOCTL(fd, CKVM_GET_CPUID2, "KVM_GET_CPUID2", raw: UnsafeMutableRawPointer(buffer))
        let count = min(Int(buffer.pointee.nent), Int(CKVM_MAX_CPUID_ENTRIES))
        return withUnsafeBytes(of: &buffer.pointee.entries) { Array($0.bindMemory(to: CPUIDEntry.self).prefix(count)) }
    }

    /// Writes the state into a fresh vCPU, in the order KVM needs: CPUID before
    /// anything that depends on features, MP state and registers, XSAVE/XCRs, debug
    /// registers, LAPIC, MSRs (TSC among them), events last; then the run page's
    /// interrupt-window request.
    public func restore(into vcpu: VCPU, kvm: KVM) throws(SnapshotError) {
        let fd = vcpu.fd
        guard fd >= 0 else { throw .refused("vCPU \(vcpu.id) is not a KVM vCPU") }
        do {
            if !cpuid.isEmpty { try vcpu.setCPUID(cpuid) }
            if let tscKHz { try restoreTSCRate(fd, tscKHz) }
            try vcpu.setMPState(mpState)
            try vcpu.setRegisters(registers)
            try vcpu.setSpecialRegisters(specialRegisters)
            if var xsave {
                try withMutableBytes(&xsave) { raw throws(SnapshotError) in
                    try stateIOCTL(fd, CKVM_SET_XSAVE, "KVM_SET_XSAVE", raw: raw.baseAddress!)
                }
            } else if let fpu {
                try vcpu.setFPU(fpu)
            }
            if var xcrs { try stateIOCTL(fd, CKVM_SET_XCRS, "KVM_SET_XCRS", &xcrs) }
            if var debugRegisters { try stateIOCTL(fd, CKVM_SET_DEBUGREGS, "KVM_SET_DEBUGREGS", &debugRegisters) }
            if var lapic { try stateIOCTL(fd, CKVM_SET_LAPIC, "KVM_SET_LAPIC", &lapic) }
            try restoreMSRs(fd)
            try vcpu.setEvents(events)
            vcpu.requestInterruptWindow = interruptWindowRequested
        } catch let error as SnapshotError {
            throw error
        } catch let error as VMMError {
            throw .system(error)
        } catch {
            throw .refused("vCPU \(vcpu.id): \(error)")
        }
    }

    /// The guest's TSC keeps the rate it was saved with, which the guest calibrated its
    /// clocks against. Before, a failed `KVM_SET_TSC_KHZ` (or none, where KVM does not
    /// report TSC_CONTROL but takes a higher rate by catching up) was ignored: a snapshot
    /// from a faster host ran its guest's clocks slow, without a word. Refused here,
    /// naming both rates, when the kernel cannot give the saved rate (a lower one than
    /// the host's, without TSC scaling; KVM itself takes any rate within its 250 ppm).
    private func restoreTSCRate(_ fd: Int32, _ saved: UInt32) throws(SnapshotError) {
        let host = ckvm_ioctl_value(fd, CKVM_GET_TSC_KHZ, 0)
        guard host != Int32(bitPattern: saved) else { return }
        // The kernel records the rate asked for even when it refuses it: only the
        // call's own answer says whether the guest got it.
        guard ckvm_ioctl_value(fd, CKVM_SET_TSC_KHZ, UInt(saved)) < 0 else { return }
        let err = String(cString: strerror(errno))
        let hostRate = host > 0 ? "this host's runs at \(host) kHz" : "this host does not say its rate"
        throw .refused("vCPU \(id): its TSC ran at \(saved) kHz; \(hostRate) and KVM cannot run it at the saved rate (KVM_SET_TSC_KHZ: \(err))")
    }

    /// `KVM_SET_MSRS` in batches. The kernel refuses some MSRs it listed and let us read
    /// when the vCPU's CPUID lacks their feature (MSR_KVM_ASYNC_PF_INT without
    /// ASYNC_PF_INT): such an MSR is skipped only if the fresh vCPU already holds the
    /// saved value; otherwise the restore fails naming it.
    private func restoreMSRs(_ fd: Int32) throws(SnapshotError) {
        let batch = UnsafeMutablePointer<ckvm_msrs>.allocate(capacity: 1)
        defer { batch.deallocate() }
        var next = 0
        while next < msrs.count {
            let chunk = Array(msrs[next..<min(msrs.count, next + Int(CKVM_MAX_MSR_ENTRIES))])
            batch.initialize(to: ckvm_msrs())
            batch.pointee.nmsrs = UInt32(chunk.count)
            withUnsafeMutableBytes(of: &batch.pointee.entries) { raw in
                let entries = raw.bindMemory(to: kvm_msr_entry.self)
                for (i, m) in chunk.enumerated() { entries[i] = kvm_msr_entry(index: m.index, reserved: 0, data: m.value) }
            }
            let set = min(Int(try stateIOCTL(fd, CKVM_SET_MSRS, "KVM_SET_MSRS", raw: UnsafeMutableRawPointer(batch))), chunk.count)
            next += set
            guard set < chunk.count else { continue }
            let refused = chunk[set]
            guard try Self.readMSR(fd, refused.index, batch) == refused.value else {
                throw .system(.ioctlFailed(name: "KVM_SET_MSRS (vCPU \(id) refused MSR \(hex(refused.index)) = \(hex(refused.value)))", errno: .invalidArgument))
            }
            next += 1
        }
    }

    /// One MSR of a vCPU, or nil if the kernel will not read it.
    private static func readMSR(_ fd: Int32, _ index: UInt32, _ batch: UnsafeMutablePointer<ckvm_msrs>) throws(SnapshotError) -> UInt64? {
        batch.initialize(to: ckvm_msrs())
        batch.pointee.nmsrs = 1
        batch.pointee.entries.0 = kvm_msr_entry(index: index, reserved: 0, data: 0)
        let got = try stateIOCTL(fd, CKVM_GET_MSRS, "KVM_GET_MSRS", raw: UnsafeMutableRawPointer(batch))
        return got == 1 ? batch.pointee.entries.0.data : nil
    }
}
