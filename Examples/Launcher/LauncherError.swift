/// The launcher's process exit statuses. Odd statuses belong to the guest: a write of v
/// to the debug-exit port ends the process with (v << 1) | 1, QEMU's isa-debug-exit
/// convention, so the launcher's own statuses are all even.
enum LauncherStatus: Int32, CaseIterable {
    case halted = 0          // every vCPU halted cleanly, or the guest asked for a reset (port 0xcf9 or 0x92, the i8042) or a power-off (ACPI, port 0x604)
    case usage = 2           // unknown option or bad flag value
    case config = 4          // malformed or invalid --config file
    case image = 6           // missing, truncated or unloadable guest image
    case plugin = 8          // a plugin was refused at load or failed while handling an exit
    case shutdown = 10       // the guest triple-faulted
    case internalError = 12  // KVM internal error or failed VM entry
    case stuck = 14          // a vCPU stuck on the same fault, or an unresolved memory fault
    case timeout = 16        // --max-seconds elapsed
    case unhandled = 18      // an exit nobody handles (port, MMIO, MSR...)
    case host = 20           // /dev/kvm or another host resource is unusable
    case snapshotSaved = 22  // stopped (--max-seconds or a stop request) and saved (--snapshot-on-stop)
    case snapshot = 24       // a snapshot could not be written, or restore refused one (damaged, incompatible, plugin state missing, host paths without --trust-snapshot)
    case panicked = 26       // the guest reported a panic (pvpanic, --pvpanic)

    var meaning: String {
        switch self {
        case .halted: "all vCPUs halted, or the guest asked for a reset or a power-off"
        case .usage: "bad command line"
        case .config: "bad config file"
        case .image: "bad guest image"
        case .plugin: "plugin refused or failed"
        case .shutdown: "guest shutdown (triple fault)"
        case .internalError: "KVM internal error or failed entry"
        case .stuck: "vCPU stuck on a memory fault"
        case .timeout: "--max-seconds elapsed"
        case .unhandled: "unhandled exit"
        case .host: "host error (KVM unavailable, out of resources)"
        case .snapshotSaved: "stopped and snapshotted (--snapshot-on-stop)"
        case .snapshot: "snapshot not written, or refused by restore"
        case .panicked: "the guest panicked (pvpanic)"
        }
    }
}

/// A problem the launcher reports as one line and an exit status.
struct LauncherError: Error, CustomStringConvertible {
    let status: LauncherStatus
    let message: String

    init(_ status: LauncherStatus, _ message: String) {
        self.status = status
        self.message = message
    }

    var description: String { message }
}
