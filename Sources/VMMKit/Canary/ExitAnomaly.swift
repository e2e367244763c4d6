import CKVM
import Glibc

/// An exit record the canary refused to trust. It is never dispatched: the vCPU stops
/// with `StopReason.error(.exitAnomaly(...))` and this diagnosis.
public struct ExitAnomaly: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// `KVM_RUN` returned 0 but the poison is still in `exit_reason`.
        case noExitReported
        /// `KVM_RUN` returned 0 with `KVM_EXIT_MEMORY_FAULT`, which only comes with -1.
        case memoryFaultWithoutError
        /// An exit whose fields are impossible (e.g. an annotation written over it).
        case clobberedRecord(reason: UInt32, detail: String)
        /// -1 EFAULT/EHWPOISON with another exit freshly set up: the kernel prepared an
        /// exit, then failed the entry.
        case exitSetUpThenFailed(reason: UInt32)
        /// -1 EFAULT/EHWPOISON with `KVM_EXIT_MEMORY_FAULT` but the fields still poisoned.
        case halfWrittenAnnotation
    }

    public let kind: Kind
    public let vcpu: UInt32
    /// RIP when the anomaly was seen, if the registers could be read.
    public let rip: UInt64?
    public let rc: Int32
    public let errno: Int32
    /// The vCPU's last exits, oldest first; the last one is this anomaly.
    public let recentExits: [ExitSummary]

    public var description: String {
        let what: String = switch kind {
        case .noExitReported:
            "KVM_RUN returned 0 but exit_reason still holds the canary's poison: the kernel reported no exit"
        case .memoryFaultWithoutError:
            "KVM_RUN returned 0 with exit reason 39 (KVM_EXIT_MEMORY_FAULT), which the kernel may only report with -1 EFAULT/EHWPOISON: protocol violation"
        case let .clobberedRecord(reason, detail):
            "clobbered exit record: exit reason \(reason) (\(ExitSummary.reasonName(reason))) with \(detail)"
        case let .exitSetUpThenFailed(reason):
            "KVM_RUN failed with \(errnoName(errno)) after setting up exit \(reason) (\(ExitSummary.reasonName(reason))): the exit was never completed, so it is not dispatched"
        case .halfWrittenAnnotation:
            "KVM_RUN failed with \(errnoName(errno)) and exit reason 39 but memory_fault.gpa/size still hold the poison: half-written annotation"
        }
        return "vCPU \(vcpu) at RIP \(rip.map { hex($0) } ?? "unknown"): \(what)" + ExitSummary.describe(recentExits)
    }
}

/// One line of a vCPU's exit history: enough to tell a person what the guest was doing.
public struct ExitSummary: Sendable, Equatable, CustomStringConvertible {
    public var rc: Int32 = 0
    public var errno: Int32 = 0
    /// `exit_reason` after the entry (the poison if the kernel wrote none).
    public var reason: UInt32 = 0
    /// Port, MMIO address or fault GPA, when the exit has one.
    public var address: UInt64 = 0
    public var length: UInt32 = 0
    public var isWrite = false
    public var outcome: Tag = .exit

    public enum Tag: UInt8, Sendable {
        case exit, interrupted, annotatedFault, unannotatedFault, error, anomaly
    }

    public var description: String {
        let kernel = "rc \(rc)" + (rc < 0 ? " \(errnoName(errno))" : "")
        switch outcome {
        case .interrupted: return "\(kernel): interrupted (kick)"
        case .error: return "\(kernel): error, exit_reason not read"
        case .unannotatedFault: return "\(kernel): un-annotated memory fault (no address)"
        case .annotatedFault: return "\(kernel): memory fault at guest-physical \(hex(address)), \(length) bytes"
        case .anomaly: return "\(kernel): untrusted record, exit_reason \(hex(reason))"
        case .exit:
            let dir = isWrite ? "write" : "read"
            switch Int32(bitPattern: reason) {
            case KVM_EXIT_IO: return "\(kernel): PIO \(isWrite ? "out" : "in") port \(hex(address)), \(length) bytes"
            case KVM_EXIT_MMIO: return "\(kernel): MMIO \(dir) at \(hex(address)), \(length) bytes"
            default: return "\(kernel): \(Self.reasonName(reason))"
            }
        }
    }

    static func describe(_ recent: [ExitSummary]) -> String {
        guard !recent.isEmpty else { return "" }
        return "; last exits (oldest first): " + recent.map(\.description).joined(separator: " | ")
    }

    static func reasonName(_ reason: UInt32) -> String {
        switch Int32(bitPattern: reason) {
        case KVM_EXIT_UNKNOWN: "KVM_EXIT_UNKNOWN"
        case KVM_EXIT_IO: "KVM_EXIT_IO"
        case KVM_EXIT_HYPERCALL: "KVM_EXIT_HYPERCALL"
        case KVM_EXIT_DEBUG: "KVM_EXIT_DEBUG"
        case KVM_EXIT_HLT: "KVM_EXIT_HLT"
        case KVM_EXIT_MMIO: "KVM_EXIT_MMIO"
        case KVM_EXIT_SHUTDOWN: "KVM_EXIT_SHUTDOWN"
        case KVM_EXIT_FAIL_ENTRY: "KVM_EXIT_FAIL_ENTRY"
        case KVM_EXIT_INTR: "KVM_EXIT_INTR"
        case KVM_EXIT_INTERNAL_ERROR: "KVM_EXIT_INTERNAL_ERROR"
        case KVM_EXIT_SYSTEM_EVENT: "KVM_EXIT_SYSTEM_EVENT"
        case KVM_EXIT_X86_RDMSR: "KVM_EXIT_X86_RDMSR"
        case KVM_EXIT_X86_WRMSR: "KVM_EXIT_X86_WRMSR"
        case KVM_EXIT_MEMORY_FAULT: "KVM_EXIT_MEMORY_FAULT"
        case Int32(bitPattern: ExitCanary.poisonReason): "canary poison"
        default: "exit reason \(reason)"
        }
    }
}

/// "EFAULT (errno 14)": the symbolic name people grep for, plus the number.
func errnoName(_ errno: Int32) -> String {
    let name = switch errno {
    case EFAULT: "EFAULT"
    case EHWPOISON: "EHWPOISON"
    case EINTR: "EINTR"
    case EAGAIN: "EAGAIN"
    case EINVAL: "EINVAL"
    case ENOEXEC: "ENOEXEC"
    case EBADF: "EBADF"
    case ENXIO: "ENXIO"
    default: "errno"
    }
    return "\(name) (errno \(errno))"
}
