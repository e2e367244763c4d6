import VMMKit

/// The control surface of a running VM, as Swift calls: what `vmm run --api-sock` serves
/// over HTTP, for library users without HTTP. Any thread may call it while the vCPUs run
/// (`ARCHITECTURE.md`, threads); operations are serialised by one lock, so a pause and a
/// resume from two clients never interleave, all but `stop()`, which must never wait
/// behind another. It never starts a thread of its own.
public final class VMController: @unchecked Sendable {
    public let vm: VirtualMachine
    /// Exits by kind, when the VMM installed this counter as (or in front of) its observer.
    public let exitCounter: ExitKindCounter?
    private let operations = Lock<Sources>(Sources())

    private struct Sources {
        var counters: [(group: String, read: @Sendable () -> [(String, UInt64)])] = []
        var snapshotHook: SnapshotHook?
        var powerButton: (@Sendable () -> Void)?
        var screen: (@Sendable () throws(ControlError) -> String)?
        var screendump: (@Sendable (String) throws(ControlError) -> Void)?
        var keyboard: (@Sendable ([Substring]) throws(ControlError) -> Void)?
        var mouse: (@Sendable (MouseEvent) throws(ControlError) -> Void)?
        var pausedByController = false
        /// A snapshot's hook runs (outside the lock): the VM stays paused until it returns.
        var snapshotting = false
    }

    public init(vm: VirtualMachine, exitCounter: ExitKindCounter? = nil) {
        self.vm = vm
        self.exitCounter = exitCounter
    }

    /// The operation the VMM installed (`pick`), taken under the lock and called outside
    /// it, or `.unavailable(missing)`.
    private func installed<T>(_ pick: (Sources) -> T?, else missing: String) throws(ControlError) -> T {
        guard let operation = operations.withLock({ pick($0) }) else { throw .unavailable(missing) }
        return operation
    }

    /// Adds a group of counters to `metrics()` (e.g. "demand_paging" from a `DemandPager`).
    /// `read` is called on the caller's thread of `metrics()`, so it must be thread-safe.
    public func addCounters(_ group: String, _ read: @escaping @Sendable () -> [(String, UInt64)]) {
        operations.withLock { $0.counters.append((group, read)) }
    }

    /// Installs what `snapshot(to:)` calls. Without one, `snapshot(to:)` throws `.unavailable`.
    public func setSnapshotHook(_ hook: SnapshotHook?) {
        operations.withLock { $0.snapshotHook = hook }
    }

    public var hasSnapshotHook: Bool { operations.withLock { $0.snapshotHook != nil } }

    // MARK: - Info

    public func info() -> VMInfo {
        let vcpus = vm.vcpus.map { VMInfo.VCPUInfo(id: $0.id, state: Self.state(of: $0)) }
        let regions = vm.memory.regions.map {
            VMInfo.Region(name: $0.name, guestAddress: $0.guestAddress, size: $0.size, backing: "\($0.backing)")
        }
        return VMInfo(vcpus: vcpus, memory: regions)
    }

    static func state(of vcpu: VCPU) -> VCPURunState {
        if !vcpu.isRunning { return .stopped }
        return vcpu.isPaused ? .paused : .running
    }

    // MARK: - Pause, resume, stop

    /// Pauses every vCPU and returns once each is parked outside KVM_RUN (or has stopped).
    /// Pausing a paused VM does nothing; a VM whose vCPUs have all stopped is refused.
    public func pause() throws(ControlError) {
        try operations.withLock { (s) throws(ControlError) in
            let vcpus = vm.vcpus
            guard vcpus.contains(where: { $0.isRunning }) else { throw .conflict("the VM has stopped") }
            // A vCPU's pauses nest; this controller holds at most one, so one resume undoes it.
            guard !s.pausedByController else { return }
            for vcpu in vcpus { vcpu.pause() }
            s.pausedByController = true
        }
    }

    /// Resumes the vCPUs a `pause()` parked and returns at once (each reports `.running`
    /// in `info()` as soon as its thread wakes). Resuming a running VM does nothing.
    /// The in-kernel PIT's ticks held back by the pause are dropped first, as QEMU's
    /// resume does (`VirtualMachine.restartPeriodicPIT`): no burst of them after it
    /// (and the PIT's period starts again at the resume).
    public func resume() throws(ControlError) {
        try operations.withLock { (s) throws(ControlError) in
            let vcpus = vm.vcpus
            guard vcpus.contains(where: { $0.isRunning }) else { throw .conflict("the VM has stopped") }
            guard s.pausedByController else { return }
            guard !s.snapshotting else { throw .conflict("a snapshot is being written; resume once it is done") }
            // A PIT that cannot be written back costs the guest a burst of ticks, not its
            // run: the resume goes on.
            try? vm.restartPeriodicPIT()
            for vcpu in vcpus { vcpu.resume() }
            s.pausedByController = false
        }
    }

    /// Asks every vCPU to stop (paused ones too) and returns at once; the VMM's
    /// `vm.run` then returns with `.requested` for each. It takes no lock: a `pause()`
    /// still waiting for a vCPU to park (one held in a slow handler) holds the
    /// operations', and a stop must not queue behind it; the stop ends that wait. A
    /// snapshot being written meanwhile goes on from the stopped vCPUs' state (they do
    /// not enter the guest again); the VMM waits for it before it closes the VM, as
    /// `vmm run` does.
    public func stop() {
        vm.requestStop(.requested)
    }

    /// Whether the VM is paused through this controller.
    public var isPaused: Bool { operations.withLock { $0.pausedByController } }

    // MARK: - Power button

    /// Installs what `pressPowerButton()` calls: the machine's power button (the
    /// launcher's ACPI PM1 block). Without one, `pressPowerButton()` throws `.unavailable`.
    public func setPowerButton(_ press: (@Sendable () -> Void)?) {
        operations.withLock { $0.powerButton = press }
    }

    /// Presses the power button, as QEMU's `system_powerdown`: the guest is asked to shut
    /// down and decides what to do (an ACPI guest switches off; one without ACPI support,
    /// or that has not enabled the button, goes on). Returns at once.
    public func pressPowerButton() throws(ControlError) {
        try operations.withLock { (s) throws(ControlError) in
            guard let press = s.powerButton else {
                throw .unavailable("this machine has no power button (no ACPI power management block)")
            }
            guard vm.vcpus.contains(where: { $0.isRunning }) else { throw .conflict("the VM has stopped") }
            press()
        }
    }

    // MARK: - Text screen

    /// Installs what `screen()` reads: the guest's text screen as lines of text (the
    /// launcher's VGA text screen), throwing (`.conflict`) when the display shows none
    /// now. Without one, `screen()` throws `.unavailable`.
    public func setScreen(_ read: (@Sendable () throws(ControlError) -> String)?) {
        operations.withLock { $0.screen = read }
    }

    /// The guest's text screen now, as QEMU's `screendump` of a text mode: what the
    /// guest wrote so far, running or paused.
    public func screen() throws(ControlError) -> String {
        let read = operations.withLock { $0.screen }
        guard let read else { throw .unavailable("this machine has no text screen") }
        return try read()
    }

    // MARK: - Graphics screen

    /// Installs what `screendump(to:)` calls: it writes the guest's graphics screen to a
    /// file (the launcher's Bochs display as a PPM), throwing `.conflict` when the display
    /// has no picture now and `.badRequest` when the file cannot be written. Without one,
    /// `screendump(to:)` throws `.unavailable`.
    public func setScreendump(_ write: (@Sendable (String) throws(ControlError) -> Void)?) {
        operations.withLock { $0.screendump = write }
    }

    /// Writes the guest's graphics screen now to `path`, as QEMU's `screendump FILE`:
    /// running or paused (a running guest may be drawing, as under QEMU).
    public func screendump(to path: String) throws(ControlError) {
        try installed({ $0.screendump }, else: "this machine has no graphics display (vmm run --vga std)")(path)
    }

    // MARK: - Mouse

    /// Installs what `moveMouse(_:)` calls: the machine's mouse (the launcher's PS/2
    /// mouse), which throws `.conflict` when the guest does not take motion now. Without
    /// one, `moveMouse` throws `.unavailable`.
    public func setMouse(_ move: (@Sendable (MouseEvent) throws(ControlError) -> Void)?) {
        operations.withLock { $0.mouse = move }
    }

    /// Moves the guest's mouse, turns its wheel and sets its buttons, as QEMU's
    /// `mouse_move` and `mouse_button`.
    public func moveMouse(_ event: MouseEvent) throws(ControlError) {
        try installed({ $0.mouse }, else: "this machine has no mouse")(event)
    }

    // MARK: - Keyboard

    /// Installs what `sendKeys(_:)` calls: the machine's keyboard (the launcher's i8042),
    /// which types key combinations or throws `.badRequest` for a name it does not know
    /// and `.conflict` when it cannot take them now. Without one, `sendKeys` throws
    /// `.unavailable`.
    public func setKeyboard(_ type: (@Sendable ([Substring]) throws(ControlError) -> Void)?) {
        operations.withLock { $0.keyboard = type }
    }

    /// Types key combinations, as QEMU's `sendkey` (`ctrl-alt-delete`: each key pressed
    /// in order, released in reverse), one combination after the other. The guest reads
    /// them when it reads its keyboard; a paused guest, once resumed.
    public func sendKeys(_ combinations: [Substring]) throws(ControlError) {
        try operations.withLock { (s) throws(ControlError) in
            guard let type = s.keyboard else { throw .unavailable("this machine has no keyboard (no i8042)") }
            guard vm.vcpus.contains(where: { $0.isRunning }) else { throw .conflict("the VM has stopped") }
            try type(combinations)
        }
    }

    // MARK: - Snapshot

    /// Saves the paused VM into `directory` through the installed hook; the VM stays paused.
    /// The hook runs outside the operations' lock, so `metrics()`, `info()` and the rest are
    /// answered while it writes (they waited for the whole snapshot); meanwhile `resume()`
    /// and another snapshot are refused (`.conflict`), so the VM stays as the hook found it.
    public func snapshot(to directory: String) throws(ControlError) {
        let hook = try operations.withLock { (s) throws(ControlError) -> SnapshotHook in
            guard let hook = s.snapshotHook else {
                throw .unavailable("snapshotting is not available in this build (no snapshot hook installed)")
            }
            guard vm.vcpus.contains(where: { $0.isRunning }) else { throw .conflict("the VM has stopped") }
            guard s.pausedByController else { throw .conflict("the VM must be paused before a snapshot (PATCH /vm {\"state\": \"Paused\"})") }
            guard !s.snapshotting else { throw .conflict("a snapshot is being written; ask again once it is done") }
            s.snapshotting = true
            return hook
        }
        defer { operations.withLock { $0.snapshotting = false } }
        do { try hook(vm, directory) } catch { throw .failed("snapshot to \(directory) failed: \(error)") }
    }

    // MARK: - Metrics

    public func metrics() -> VMMetrics {
        let groups = operations.withLock { $0.counters }
        return VMMetrics(
            exitsPerVCPU: vm.vcpus.map { $0.exitCount },
            exitsByKind: exitCounter?.totals().map { ($0.kind.rawValue, $0.count) },
            counters: groups.map { ($0.group, $0.read()) })
    }
}

/// What `VMController.snapshot(to:)` runs with the paused VM and the target directory.
public typealias SnapshotHook = @Sendable (VirtualMachine, String) throws -> Void

public enum VCPURunState: String, Sendable { case running, paused, stopped }

public struct VMInfo: Sendable {
    public struct VCPUInfo: Sendable { public let id: UInt32; public let state: VCPURunState }
    public struct Region: Sendable {
        public let name: String
        public let guestAddress: UInt64
        public let size: UInt64
        public let backing: String
    }
    public let vcpus: [VCPUInfo]
    public let memory: [Region]

    /// The VM as a whole: running if any vCPU runs, paused if every live vCPU is paused.
    public var state: VCPURunState {
        let live = vcpus.filter { $0.state != .stopped }
        if live.isEmpty { return .stopped }
        return live.allSatisfy { $0.state == .paused } ? .paused : .running
    }
}

public struct VMMetrics: Sendable {
    /// `KVM_RUN` returns per vCPU (`VCPU.exitCount`), including kicks.
    public let exitsPerVCPU: [UInt64]
    /// Dispatched exits by kind over all vCPUs (nil without an `ExitKindCounter`).
    public let exitsByKind: [(kind: String, count: UInt64)]?
    public let counters: [(group: String, values: [(String, UInt64)])]
}

/// Why a control operation was refused; `status` is the HTTP status the API answers with.
public enum ControlError: Error, Equatable, CustomStringConvertible {
    case badRequest(String)
    case conflict(String)
    case unavailable(String)
    case failed(String)

    public var status: Int {
        switch self {
        case .badRequest: 400
        case .conflict: 409
        case .unavailable: 501
        case .failed: 500
        }
    }

    public var description: String {
        switch self {
        case let .badRequest(m), let .conflict(m), let .unavailable(m), let .failed(m): m
        }
    }
}

/// A pointer event for the guest's mouse (`VMController.moveMouse`): motion in screen
/// directions (x right, y down), the wheel (positive: towards the user, down), and the
/// buttons held (nil: as they are).
public struct MouseEvent: Equatable, Sendable {
    public var dx: Int
    public var dy: Int
    public var wheel: Int
    /// Bit n: `buttonNames[n]` held.
    public var buttons: UInt8?

    /// The most motion one event carries on each axis.
    public static let maxMotion = 1023
    /// The buttons by bit, as QEMU's input layer names them.
    public static let buttonNames = ["left", "right", "middle", "side", "extra"]

    public init(dx: Int = 0, dy: Int = 0, wheel: Int = 0, buttons: UInt8? = nil) {
        (self.dx, self.dy, self.wheel, self.buttons) = (dx, dy, wheel, buttons)
    }
}
