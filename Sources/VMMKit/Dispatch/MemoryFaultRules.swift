import Glibc

/// What the dispatcher enforces for memory faults, whoever handles them.
///
/// Before any handler: a located fault's location must be possible (size >= 1, inside
/// the 64-bit space), so no handler — in process or a plugin — sees a record the plugin
/// header says cannot happen. After the handler: EHWPOISON is never retried on a plain
/// `.handled` (the memory behind the access is broken; re-entering faults again or, worse,
/// lets the guest read it); only `.backingReplaced` re-enters. Nobody answering: the
/// default names the fault, its flags and the vCPU.
enum MemoryFaultRules {
    /// A stop for a fault whose record breaks the invariants; nil when it may be dispatched.
    @inline(__always)
    static func refuse(_ fault: MemoryFault, _ vcpu: VCPU) -> ExitVerdict? {
        guard let at = fault.location, !at.isValid else { return nil }
        return .stop(.memoryFault("memory fault record of \(at.size) bytes at guest-physical \(hex(at.gpa)) refused before any handler saw it "
            + "(a located fault covers 1 byte or more, below 2^64), \(errnoName(fault.errno)), vCPU \(vcpu.id) at RIP \(rip(vcpu))"))
    }

    /// The verdict the run loop acts on, given a handler's answer to `fault`.
    @inline(__always)
    static func settle(_ fault: MemoryFault, _ verdict: ExitVerdict, _ vcpu: VCPU) -> ExitVerdict {
        guard fault.isHardwarePoison, case .handled = verdict else { return verdict }
        return .stop(.hardwarePoison(location: fault.location,
            diagnosis: poisonDiagnosis(fault, vcpu, "a handler answered handled without replacing the backing (ExitVerdict.backingReplaced / VMM_BACKING_REPLACED), so the core does not re-enter")))
    }

    /// The default for a fault nobody resolved.
    static func unresolved(_ fault: MemoryFault, at: String, _ vcpu: VCPU) -> ExitVerdict {
        if fault.isHardwarePoison {
            return .stop(.hardwarePoison(location: fault.location, diagnosis: poisonDiagnosis(fault, vcpu, "no handler replaced the backing")))
        }
        let place = if let loc = fault.location {
            "at guest-physical \(hex(loc.gpa)) (\(loc.size) bytes, \(fault.flagsDescription))"
        } else {
            "with no address (not annotated)"
        }
        return .stop(.memoryFault("unresolved memory fault \(place), \(errnoName(fault.errno)), \(at)"
                                  + ExitSummary.describe(vcpu.canary.recentExits)))
    }

    static func poisonDiagnosis(_ fault: MemoryFault, _ vcpu: VCPU, _ why: String) -> String {
        let place = if let loc = fault.location {
            "at guest-physical \(hex(loc.gpa)) (\(loc.size) bytes, \(fault.flagsDescription))"
        } else {
            "with no address (not annotated)"
        }
        return "hardware-poisoned memory \(place), \(errnoName(fault.errno)), vCPU \(vcpu.id) at RIP \(rip(vcpu)): \(why)"
            + ExitSummary.describe(vcpu.canary.recentExits)
    }

    private static func rip(_ vcpu: VCPU) -> String { (try? vcpu.registers().rip).map { hex($0) } ?? "unknown" }
}
