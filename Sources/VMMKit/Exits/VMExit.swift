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

    /// Element `index` as an integer (little endian, zero-extended).
    public func element(_ index: Int = 0) -> UInt32 {
        var value: UInt32 = 0
        withUnsafeMutableBytes(of: &value) { dst in
            dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: data[(index * size)..<(index * size + size)]))
        }
        return UInt32(littleEndian: value)
    }

    /// Sets element `index` (truncated to `size` bytes).
    public func setElement(_ index: Int = 0, _ value: UInt32) {
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

/// A failed guest memory access reported by `KVM_RUN` = -1 with EFAULT/EHWPOISON.
public struct MemoryFault: Sendable, Equatable {
    /// EFAULT or EHWPOISON.
    public let errno: Int32
    /// Whether the kernel annotated it (`exit_reason == KVM_EXIT_MEMORY_FAULT`); only then
    /// are `gpa`, `size` and `flags` meaningful.
    public let annotated: Bool
    public let gpa: UInt64
    public let size: UInt64
    /// KVM_MEMORY_EXIT_FLAG_PRIVATE and friends.
    public let flags: UInt64

    public init(errno: Int32, annotated: Bool, gpa: UInt64, size: UInt64, flags: UInt64) {
        self.errno = errno
        self.annotated = annotated
        self.gpa = gpa
        self.size = size
        self.flags = flags
    }
}

extension String {
    func leftPad(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
