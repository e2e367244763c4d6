import VMMKit

/// Whether the CPUID a vCPU had can be given to a vCPU on this host: same vendor, and
/// every feature bit it saw is one this host's KVM offers (`KVM_GET_SUPPORTED_CPUID`).
/// A guest that saw a feature and is restored where it is absent would fault or
/// misbehave on its first use, long after the restore said it worked.
enum CPUIDCompatibility {
    enum Register: String { case eax = "EAX", ebx = "EBX", ecx = "ECX", edx = "EDX" }

    /// Feature words checked bit by bit, and the bits KVM sets in a vCPU's CPUID at
    /// run time (OSXSAVE, APIC, OSPKE follow CR4 and the APIC base; TSC-deadline and
    /// the hypervisor bit are offered outside the supported list).
    static let featureWords: [(function: UInt32, index: UInt32, register: Register, dynamic: UInt32)] = [
        (0x1, 0, .ecx, (1 << 27) | (1 << 24) | (1 << 31)),
        (0x1, 0, .edx, 1 << 9),
        (0x7, 0, .ebx, 0),
        (0x7, 0, .ecx, 1 << 4),
        (0x7, 0, .edx, 0),
        (0x7, 1, .eax, 0),
        (0xd, 0, .eax, 0),
        (0xd, 1, .eax, 0),
        (0x8000_0001, 0, .ecx, 0),
        (0x8000_0001, 0, .edx, 0),
        (0x4000_0001, 0, .eax, 0),
    ]

    static func value(_ e: CPUIDEntry, _ r: Register) -> UInt32 {
        switch r {
        case .eax: e.eax
        case .ebx: e.ebx
        case .ecx: e.ecx
        case .edx: e.edx
        }
    }

    /// `supported` is `KVM_GET_SUPPORTED_CPUID`, `effective` what a vCPU given it reports
    /// (`SnapshotImage.effectiveCPUID`); a bit either offers is honoured.
    static func firstMismatch(saved: [CPUIDEntry], supported: [CPUIDEntry], effective: [CPUIDEntry] = []) -> String? {
        func find(_ list: [CPUIDEntry], _ function: UInt32, _ index: UInt32) -> CPUIDEntry? {
            list.first { $0.function == function && ($0.index == index || $0.flags & 1 == 0) }
        }
        if let s = find(saved, 0, 0), let h = find(supported, 0, 0), (s.ebx, s.edx, s.ecx) != (h.ebx, h.edx, h.ecx) {
            return "CPU vendor '\(vendor(s))' in the snapshot, '\(vendor(h))' on this host"
        }
        for word in featureWords {
            guard let s = find(saved, word.function, word.index) else { continue }
            let savedBits = value(s, word.register) & ~word.dynamic
            let hostBits = (find(supported, word.function, word.index).map { value($0, word.register) } ?? 0)
                | (find(effective, word.function, word.index).map { value($0, word.register) } ?? 0)
            let missing = savedBits & ~hostBits
            if missing != 0 {
                let bit = missing.trailingZeroBitCount
                return "CPUID leaf \(hex(word.function)).\(word.index) \(word.register.rawValue) bit \(bit) is set in the snapshot but this host's KVM does not offer it (snapshot \(hex(savedBits)), host \(hex(hostBits)))"
            }
        }
        return nil
    }

    static func vendor(_ e: CPUIDEntry) -> String {
        var bytes: [UInt8] = []
        for r in [e.ebx, e.edx, e.ecx] { withUnsafeBytes(of: r.littleEndian) { bytes.append(contentsOf: $0) } }
        return String(decoding: bytes, as: UTF8.self)
    }
}
