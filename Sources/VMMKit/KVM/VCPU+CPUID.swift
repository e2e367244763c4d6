import CKVM

extension VCPU {
    /// `KVM_GET_CPUID2`: the CPUID this vCPU was given (empty before `setCPUID`).
    public func cpuid() throws(VMMError) -> [CPUIDEntry] {
        let buffer = UnsafeMutablePointer<ckvm_cpuid>.allocate(capacity: 1)
        defer { buffer.deallocate() }
        buffer.initialize(to: ckvm_cpuid())
        buffer.pointee.nent = UInt32(CKVM_MAX_CPUID_ENTRIES)
        _ = try ioctl(try liveFD(), CKVM_GET_CPUID2, "KVM_GET_CPUID2", UnsafeMutableRawPointer(buffer))
        return withUnsafeBytes(of: &buffer.pointee.entries) { raw in
            Array(raw.bindMemory(to: CPUIDEntry.self).prefix(Int(buffer.pointee.nent)))
        }
    }

    /// Sets then clears bits of one register (0 EAX .. 3 EDX) of leaf `function`,
    /// subleaf `index` in this vCPU's current CPUID. False if the leaf is absent.
    public func editCPUID(function: UInt32, index: UInt32, register: Int, set: UInt32, clear: UInt32) throws(VMMError) -> Bool {
        var entries = try cpuid()
        let flagIndexed = UInt32(1) // KVM_CPUID_FLAG_SIGNIFCANT_INDEX
        guard let i = entries.firstIndex(where: {
            $0.function == function && ($0.flags & flagIndexed == 0 || $0.index == index)
        }) else { return false }
        func edit(_ value: inout UInt32) { value = (value | set) & ~clear }
        switch register {
        case 0: edit(&entries[i].eax)
        case 1: edit(&entries[i].ebx)
        case 2: edit(&entries[i].ecx)
        case 3: edit(&entries[i].edx)
        default: throw .invalidArgument("CPUID register \(register) (0 EAX, 1 EBX, 2 ECX, 3 EDX)")
        }
        try setCPUID(entries)
        return true
    }
}
