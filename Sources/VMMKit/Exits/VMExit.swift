import CKVM
import Glibc

/// Why a vCPU left the guest, decoded out of `kvm_run` into a value.
///
/// Handlers never see the shared `kvm_run` page: the core copies the exit out before
/// dispatch and copies handler results (I/O-in data, MMIO-read data, MSR values) back
/// right before the next `KVM_RUN`.
public enum VMExit: Sendable {
    case io(PIOAccess)
    case mmio(MMIOAccess)
    case hlt
    case shutdown
    case debug(DebugExit)
    case hypercall(Hypercall)
    case rdmsr(MSRAccess)
    case wrmsr(MSRAccess)
    case internalError(InternalError)
    case failEntry(hardwareReason: UInt64, cpu: UInt32)
    case systemEvent(type: UInt32, data: [UInt64])
    /// KVM_RUN returned -1 with EFAULT or EHWPOISON.
    case memoryFault(MemoryFault)
    case irqWindowOpen
    /// KVM_RUN returned EINTR/EAGAIN: a kick (signal or `immediate_exit`).
    case interrupted
    /// An exit reason this decoder does not know; the raw number.
    case unknown(reason: UInt32)

    /// A short name for traces, statistics and diagnostics.
    public var kind: VMExitKind {
        switch self {
        case .io: .io
        case .mmio: .mmio
        case .hlt: .hlt
        case .shutdown: .shutdown
        case .debug: .debug
        case .hypercall: .hypercall
        case .rdmsr: .rdmsr
        case .wrmsr: .wrmsr
        case .internalError: .internalError
        case .failEntry: .failEntry
        case .systemEvent: .systemEvent
        case .memoryFault: .memoryFault
        case .irqWindowOpen: .irqWindowOpen
        case .interrupted: .interrupted
        case .unknown: .unknown
        }
    }
}

public enum VMExitKind: String, Sendable, CaseIterable {
    case io, mmio, hlt, shutdown, debug, hypercall, rdmsr, wrmsr, internalError, failEntry
    case systemEvent, memoryFault, irqWindowOpen, interrupted, unknown
}

/// A port I/O exit. `data` holds `size * count` bytes in a buffer private to the vCPU:
/// for OUT it is what the guest wrote; for IN the handler fills it and the guest
/// receives it. Valid only during the handler call.
public struct PIOAccess: @unchecked Sendable {
    public let port: UInt16
    /// Bytes per element: 1, 2 or 4.
    public let size: Int
    /// Elements: 1, or more for a string instruction the kernel batched (`rep insw`).
    public let count: Int
    public let isWrite: Bool
    public let data: UnsafeMutableRawBufferPointer

    /// Element `index` as an integer (little endian, zero-extended); 0 for an index
    /// outside `0..<count`.
    public func element(_ index: Int = 0) -> UInt32 {
        guard index >= 0, index < count, (index + 1) * size <= data.count, size <= 4 else { return 0 }
        var value: UInt32 = 0
        withUnsafeMutableBytes(of: &value) { dst in
            dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: data[(index * size)..<(index * size + size)]))
        }
        return UInt32(littleEndian: value)
    }

    /// Sets element `index` (truncated to `size` bytes); ignored for an index outside
    /// `0..<count`.
    public func setElement(_ index: Int = 0, _ value: UInt32) {
        guard index >= 0, index < count, (index + 1) * size <= data.count, size <= 4 else { return }
        withUnsafeBytes(of: value.littleEndian) { src in
            UnsafeMutableRawBufferPointer(rebasing: data[(index * size)..<(index * size + size)])
                .copyMemory(from: UnsafeRawBufferPointer(rebasing: src[0..<size]))
        }
    }

    /// The first element: the value of a plain `in`/`out`.
    public var value: UInt32 {
        get { element(0) }
        nonmutating set { setElement(0, newValue) }
    }
}

/// An MMIO exit. For reads the handler sets `data`; the low `length` bytes reach the guest.
public struct MMIOAccess: Sendable {
    public let address: UInt64
    /// 1 to 8 bytes.
    public let length: Int
    public let isWrite: Bool
    /// The bytes, little endian, in the low `length` bytes.
    public var data: UInt64

    public init(address: UInt64, length: Int, isWrite: Bool, data: UInt64) {
        self.address = address
        self.length = length
        self.isWrite = isWrite
        self.data = data
    }
}

/// A single-step or breakpoint exit.
public struct DebugExit: Sendable, Equatable {
    public let exception: UInt32
    public let pc: UInt64
    public let dr6: UInt64
    public let dr7: UInt64
}

/// `KVM_EXIT_HYPERCALL`. Not reachable on kvm_pvm (vmcall never returns), kept for others.
public struct Hypercall: Sendable {
    public let number: UInt64
    public let args: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)
    public var returnValue: UInt64 = 0
}

/// An RDMSR/WRMSR exit routed to user space. For reads the handler sets `data`;
/// setting `error` makes the guest take #GP instead.
public struct MSRAccess: Sendable {
    public let index: UInt32
    /// Why the kernel sent it out: KVM_MSR_EXIT_REASON_INVAL/UNKNOWN/FILTER.
    public let reason: UInt32
    public var data: UInt64
    public var error: Bool = false
}

/// `KVM_EXIT_INTERNAL_ERROR`: the kernel could not go on with this vCPU.
public struct InternalError: Sendable, Equatable, CustomStringConvertible {
    /// KVM_INTERNAL_ERROR_* (1 = emulation failure).
    public let suberror: UInt32
    public let data: [UInt64]
    /// The instruction bytes the emulator gave up on, when the kernel reports them.
    public let instructionBytes: [UInt8]

    public var description: String {
        let name = switch suberror {
        case 1: "emulation failure"
        case 2: "simultaneous exception"
        case 3: "delivery event"
        case 4: "unexpected exit reason"
        default: "suberror \(suberror)"
        }
        var text = "KVM internal error: \(name) (suberror \(suberror))"
        if !instructionBytes.isEmpty {
            text += ", instruction bytes " + instructionBytes.map { String($0, radix: 16).leftPad(2) }.joined(separator: " ")
        }
        if !data.isEmpty { text += ", data [" + data.map { hex($0) }.joined(separator: ", ") + "]" }
        return text
    }
}

/// A failed guest memory access reported by `KVM_RUN` = -1 with EFAULT/EHWPOISON (or
/// located by the host's memory-fault layer: a userfaultfd message, an MMIO exit inside
/// RAM).
///
/// A fault has an address only when something the kernel freshly wrote says where it
/// is (`location`); an un-annotated fault has none, and there is nothing in this value
/// that could be mistaken for one. The dispatcher refuses a located fault whose
/// location is impossible (size 0, or a range past 2^64) before any handler sees it.
public struct MemoryFault: Sendable, Equatable {
    /// Where a located fault is: [gpa, gpa + size).
    public struct Location: Sendable, Equatable {
        public let gpa: UInt64
        /// Bytes from `gpa`; at least 1 for a valid location.
        public let size: UInt64

        public init(gpa: UInt64, size: UInt64) {
            self.gpa = gpa
            self.size = size
        }

        /// Size at least 1 and [gpa, gpa + size) inside the 64-bit space.
        public var isValid: Bool { size >= 1 && gpa <= UInt64.max - (size - 1) }

        /// Whether `address` lies in [gpa, gpa + size) (overflow-safe).
        public func contains(_ address: UInt64) -> Bool { address >= gpa && address - gpa < size }
    }

    /// The `KVM_MEMORY_EXIT_FLAG_*` bits this host understands (upstream Linux defines
    /// only PRIVATE, 1 << 3). Others (out-of-tree series propose 1 << 4 for KVM
    /// userfault and 1 << 5 for user-space async PF) are passed on raw: a handler can
    /// refuse what it does not know (`unknownFlags`).
    public static let knownFlags: UInt64 = UInt64(KVM_MEMORY_EXIT_FLAG_PRIVATE)

    /// EFAULT or EHWPOISON.
    public let errno: Int32
    /// Where the fault is; nil when the kernel did not annotate it (no address).
    public let location: Location?
    /// The kernel's memory_fault flags, raw (0 for an un-annotated fault).
    public let flags: UInt64

    /// A located fault: [gpa, gpa + size) with the kernel's flags.
    public init(errno: Int32, gpa: UInt64, size: UInt64, flags: UInt64 = 0) {
        self.errno = errno
        self.location = Location(gpa: gpa, size: size)
        self.flags = flags
    }

    /// A fault without an address (`KVM_RUN` failed with no fresh annotation).
    public static func unannotated(errno: Int32) -> MemoryFault { MemoryFault(errno: errno) }

    private init(errno: Int32) {
        self.errno = errno
        self.location = nil
        self.flags = 0
    }

    /// Whether the fault has an address (the kernel annotated or otherwise located it).
    public var annotated: Bool { location != nil }

    /// Whether the host memory behind the access is hardware-poisoned (EHWPOISON):
    /// re-entering is only right after a handler replaced the backing
    /// (`ExitVerdict.backingReplaced`).
    public var isHardwarePoison: Bool { errno == EHWPOISON }

    /// Flags this host does not know.
    public var unknownFlags: UInt64 { flags & ~Self.knownFlags }

    /// "flags 0x8 (private)", "flags 0x0", "flags 0x18 (private; unknown to this host: 0x10)".
    public var flagsDescription: String {
        var names: [String] = []
        if flags & UInt64(KVM_MEMORY_EXIT_FLAG_PRIVATE) != 0 { names.append("private") }
        if unknownFlags != 0 { names.append("unknown to this host: \(hex(unknownFlags))") }
        return "flags \(hex(flags))" + (names.isEmpty ? "" : " (" + names.joined(separator: "; ") + ")")
    }
}

extension String {
    func leftPad(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
