import CKVM
import Glibc

/// The canary: why a vCPU *really* left the guest, decided from the raw `kvm_run` bytes.
///
/// The kernel's exit record can be stale (x86 does not reset `exit_reason` at entry),
/// half-written, or clobbered by a memory-fault annotation written over a pending exit
/// (the KVM list's cases A, B and C). Before an entry whose previous exit needs no
/// completion the core writes a poison value over `exit_reason` and the memory_fault
/// bytes; after the entry, `classify` tells a fresh record from a stale one. Both are
/// pure functions over (rc, errno, bytes), so they are tested byte-exactly on a
/// scripted vCPU; the ioctl itself stays one line.
public enum ExitCanary {
    /// Written over `exit_reason`: no kernel exit reason has this value.
    public static let poisonReason: UInt32 = 0xA5A5_A5A5
    /// Written over each byte of the memory_fault fields (union offsets 0..<24).
    public static let poisonByte: UInt8 = 0xA5
    public static let poisonWord: UInt64 = 0xA5A5_A5A5_A5A5_A5A5

    public static let exitReasonOffset = Int(CKVM_RUN_EXIT_REASON_OFFSET)
    public static let unionOffset = Int(CKVM_RUN_EXIT_UNION_OFFSET)
    /// memory_fault.flags, .gpa, .size (upstream layout; gpa overlaps mmio.data, size mmio.len).
    public static let faultFlagsOffset = unionOffset
    public static let faultGPAOffset = unionOffset + 8
    public static let faultSizeOffset = unionOffset + 16
    /// The bytes the poison covers inside the union.
    public static let poisonedUnionBytes = 24

    /// Writes the poison. Call only when the previous exit needs no completion: the
    /// kernel reads IO/MMIO/MSR/hypercall answers back out of this page on re-entry.
    @inline(__always)
    public static func poison(_ run: UnsafeMutableRawPointer) {
        run.storeBytes(of: poisonReason, toByteOffset: exitReasonOffset, as: UInt32.self)
        run.storeBytes(of: poisonWord, toByteOffset: faultFlagsOffset, as: UInt64.self)
        run.storeBytes(of: poisonWord, toByteOffset: faultGPAOffset, as: UInt64.self)
        run.storeBytes(of: poisonWord, toByteOffset: faultSizeOffset, as: UInt64.self)
    }

    /// What the core knew about the page right before the entry.
    public struct Entry: Sendable, Equatable {
        /// Whether `poison` ran before this entry.
        public var poisoned: Bool
        /// `exit_reason` as it was right before the entry (the poison, or a pending exit's).
        public var reasonBefore: UInt32

        public init(poisoned: Bool, reasonBefore: UInt32) {
            self.poisoned = poisoned
            self.reasonBefore = reasonBefore
        }
    }

    /// One entry's outcome, before any field is decoded into a `VMExit`.
    public enum Outcome: Sendable, Equatable {
        /// rc 0 with a plausible record: decode it.
        case exit(reason: UInt32)
        /// -1 EINTR/EAGAIN: a kick.
        case interrupted
        /// -1 EFAULT/EHWPOISON with `KVM_EXIT_MEMORY_FAULT` and fresh fields.
        case annotatedFault(errno: Int32)
        /// -1 EFAULT/EHWPOISON with no annotation: poison intact, `KVM_EXIT_UNKNOWN`
        /// (arm64, and this host's ring-3 path), or a stale reason left from before the entry.
        case unannotatedFault(errno: Int32)
        /// -1 with any other errno; `exit_reason` was not read.
        case error(errno: Int32)
        /// The record cannot be trusted: never dispatched.
        case anomaly(ExitAnomaly.Kind)
    }

    /// Classifies one `KVM_RUN` return. `run` points at a `kvm_run`-sized buffer of
    /// `size` bytes; nothing is written.
    @inline(__always)
    public static func classify(rc: Int32, errno: Int32, run: UnsafeRawPointer, size: Int, entry: Entry) -> Outcome {
        if rc < 0 {
            switch errno {
            case EINTR, EAGAIN:
                return .interrupted
            case EFAULT, EHWPOISON:
                return classifyFault(errno: errno, run: run, entry: entry)
            default:
                return .error(errno: errno)
            }
        }
        let reason = run.loadUnaligned(fromByteOffset: exitReasonOffset, as: UInt32.self)
        if entry.poisoned && reason == poisonReason { return .anomaly(.noExitReported) }
        switch Int32(bitPattern: reason) {
        case KVM_EXIT_MEMORY_FAULT:
            return .anomaly(.memoryFaultWithoutError)
        case KVM_EXIT_MMIO:
            if !plausibleMMIO(run) {
                let length = run.loadUnaligned(fromByteOffset: faultSizeOffset, as: UInt32.self)
                return .anomaly(.clobberedRecord(reason: reason, detail: "MMIO length \(length) (not 1 to 8 bytes)"))
            }
        case KVM_EXIT_IO:
            if !plausibleIO(run, size: size) {
                let elementSize = run.load(fromByteOffset: unionOffset + 1, as: UInt8.self)
                let count = run.loadUnaligned(fromByteOffset: unionOffset + 4, as: UInt32.self)
                let offset = run.loadUnaligned(fromByteOffset: unionOffset + 8, as: UInt64.self)
                if elementSize != 1 && elementSize != 2 && elementSize != 4 {
                    return .anomaly(.clobberedRecord(reason: reason, detail: "I/O element size \(elementSize) is not 1, 2 or 4"))
                }
                return .anomaly(.clobberedRecord(reason: reason, detail: "I/O data (\(count) x \(elementSize) bytes at offset \(offset)) lies outside the \(size)-byte kvm_run page"))
            }
        default:
            break
        }
        return .exit(reason: reason)
    }

    /// A `KVM_EXIT_MMIO` record's length is 1 to 8 bytes. Not just 1/2/4/8: KVM splits
    /// an access that straddles a missing page into pieces of any length (measured here:
    /// an 8-byte read at page end - 2 gives exits of 2 and 6 bytes). Zero or more than 8
    /// is impossible. `classify`'s check, apart so the run loop's hot path can make it
    /// without the anomaly's message in its frame.
    @inline(__always)
    public static func plausibleMMIO(_ run: UnsafeRawPointer) -> Bool {
        let length = run.loadUnaligned(fromByteOffset: faultSizeOffset, as: UInt32.self)
        return length &- 1 < 8
    }

    /// A `KVM_EXIT_IO` record's elements are 1, 2 or 4 bytes, at least one, and its data
    /// lies inside the `size`-byte page (overflow-safe: the product of a byte and a
    /// 32-bit count fits 64 bits; the offset is compared before it is subtracted).
    @inline(__always)
    public static func plausibleIO(_ run: UnsafeRawPointer, size: Int) -> Bool {
        plausibleIO(run, pageBytes: UInt64(truncatingIfNeeded: max(size, 0)))
    }

    /// `plausibleIO` with the page size already unsigned (`VCPU.runBytes`): a signed size
    /// cost the hot path's every PIO exit 4 instructions to test it for <= 0.
    @inline(__always)
    static func plausibleIO(_ run: UnsafeRawPointer, pageBytes page: UInt64) -> Bool {
        let elementSize = run.load(fromByteOffset: unionOffset + 1, as: UInt8.self)
        let count = run.loadUnaligned(fromByteOffset: unionOffset + 4, as: UInt32.self)
        let offset = run.loadUnaligned(fromByteOffset: unionOffset + 8, as: UInt64.self)
        guard elementSize == 1 || elementSize == 2 || elementSize == 4, count != 0 else { return false }
        let bytes = UInt64(elementSize) &* UInt64(count)
        return offset <= page && bytes <= page &- offset
    }

    private static func classifyFault(errno: Int32, run: UnsafeRawPointer, entry: Entry) -> Outcome {
        let reason = run.loadUnaligned(fromByteOffset: exitReasonOffset, as: UInt32.self)
        // A reason nobody wrote during this entry is stale: the fault is un-annotated.
        if entry.poisoned ? reason == poisonReason : reason == entry.reasonBefore {
            return .unannotatedFault(errno: errno)
        }
        switch Int32(bitPattern: reason) {
        case KVM_EXIT_MEMORY_FAULT:
            let gpa = run.loadUnaligned(fromByteOffset: faultGPAOffset, as: UInt64.self)
            let size = run.loadUnaligned(fromByteOffset: faultSizeOffset, as: UInt64.self)
            if entry.poisoned && (gpa == poisonWord || size == poisonWord) {
                return .anomaly(.halfWrittenAnnotation)
            }
            // The header promises a located fault covers at least one byte, inside the
            // 64-bit space: a record that breaks it reaches no handler.
            if !MemoryFault.Location(gpa: gpa, size: size).isValid {
                return .anomaly(.clobberedRecord(reason: reason, detail: "memory fault of \(size) bytes at guest-physical \(hex(gpa)) (a fault covers 1 byte or more, below 2^64)"))
            }
            return .annotatedFault(errno: errno)
        case KVM_EXIT_UNKNOWN:
            return .unannotatedFault(errno: errno)
        default:
            return .anomaly(.exitSetUpThenFailed(reason: reason))
        }
    }

    /// Whether the kernel may read this exit's data back on the next entry (then the
    /// page must not be poisoned). Reasons this core does not know count as "may": an
    /// unpoisoned entry only loses canary coverage, a poisoned completion corrupts the guest.
    @inline(__always)
    public static func needsCompletion(reason: UInt32) -> Bool {
        switch Int32(bitPattern: reason) {
        case KVM_EXIT_UNKNOWN, KVM_EXIT_HLT, KVM_EXIT_SHUTDOWN, KVM_EXIT_DEBUG, KVM_EXIT_INTERNAL_ERROR,
             KVM_EXIT_FAIL_ENTRY, KVM_EXIT_SYSTEM_EVENT, KVM_EXIT_IRQ_WINDOW_OPEN, KVM_EXIT_INTR,
             KVM_EXIT_MEMORY_FAULT:
            return false
        default:
            return true
        }
    }
}
