/// Why a vCPU thread stopped running its guest.
public enum StopReason: Sendable, Equatable, CustomStringConvertible {
    /// HLT with no in-kernel irqchip and no handler claiming it.
    case halted
    /// A triple fault (`KVM_EXIT_SHUTDOWN`).
    case shutdown
    /// `stop()` from another thread.
    case requested
    /// A device (debug-exit, a test port) ended the guest with a status code.
    case guestExit(code: Int32)
    /// The guest asked the machine to reset; the message says how ("vCPU 0 wrote 0x6 to
    /// port 0xcf9"). VMMKit does not reboot a machine: a reset stops it, as QEMU's
    /// `-no-reboot` and Firecracker do. Like `guestExit`, the guest's choice, not an error.
    case reset(String)
    /// The guest switched the machine off (ACPI soft-off: SLP_EN with the S5 sleep type);
    /// the message says how. Like `guestExit`, the guest's choice, not an error.
    case powerOff(String)
    /// The guest reported a panic it wants the host to handle (QEMU's pvpanic, bit 0); the
    /// message says how. The guest's report, not an error of the VMM.
    case guestPanic(String)
    /// A handler returned `.fail`; the message says why, prefixed by the handler's owner.
    case handlerFailed(String)
    /// An exit nobody claimed; the diagnostic names the exit, RIP and address.
    case unhandled(String)
    /// KVM could not go on with this vCPU.
    case internalError(InternalError, rip: UInt64)
    /// `KVM_EXIT_FAIL_ENTRY`.
    case failEntry(hardwareReason: UInt64)
    /// The same memory fault over and over: the diagnosis says where.
    case stuck(String)
    /// A memory fault nobody resolved.
    case memoryFault(String)
    /// The host memory behind a guest access is hardware-poisoned (EHWPOISON) and no
    /// handler replaced it (`ExitVerdict.backingReplaced`); `location` is nil when the
    /// kernel did not say where. The diagnosis names vCPU, RIP and the handler's answer.
    case hardwarePoison(location: MemoryFault.Location?, diagnosis: String)
    /// KVM_RUN or another ioctl failed.
    case error(VMMError)

    public var description: String {
        switch self {
        case .halted: "halted"
        case .shutdown: "shutdown (triple fault)"
        case .requested: "stopped on request"
        case let .guestExit(code): "guest exit with code \(code)"
        case let .reset(how): "guest reset (\(how))"
        case let .powerOff(how): "guest power-off (\(how))"
        case let .guestPanic(how): "guest panic (\(how))"
        case let .handlerFailed(message): "handler failed: \(message)"
        case let .unhandled(message): message
        case let .internalError(error, rip): "\(error) at RIP \(hex(rip))"
        case let .failEntry(reason): "VM entry failed (hardware reason \(hex(reason)))"
        case let .stuck(message): "stuck: \(message)"
        case let .memoryFault(message): message
        case let .hardwarePoison(_, diagnosis): diagnosis
        case let .error(error): error.description
        }
    }
}
