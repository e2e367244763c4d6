import CKVM
import Glibc
import Synchronization
import SystemPackage

public typealias Registers = kvm_regs
public typealias SpecialRegisters = kvm_sregs
public typealias FPUState = kvm_fpu
public typealias VCPUEvents = kvm_vcpu_events
public typealias Segment = kvm_segment

/// One virtual CPU: its fd, its `kvm_run` mapping and its architectural state.
///
/// State accessors may be called from the vCPU's own thread (inside handlers) or from
/// any thread while the vCPU is not running (before `start`, after `join`, or paused).
public final class VCPU: @unchecked Sendable {
    public let id: UInt32
    public let memory: GuestMemory
    weak var vm: VirtualMachine?
    /// Who performs each entry: real KVM, or a scripted/replayed vCPU (see `VCPUBackend`).
    /// Replaced only before the vCPU starts (e.g. by a recorder wrapping it).
    var backend: any VCPUBackend {
        get { entry.backend }
        set { entry = BackendEntry(newValue) }
    }
    /// The backend as the run loop reaches it: `entryRef` is `entry` unretained, so an
    /// entry costs no retain/release of the existential (VCPUBackend.swift).
    private var entry: BackendEntry {
        didSet { entryRef = Unmanaged.passUnretained(entry) }
    }
    private(set) var entryRef: Unmanaged<BackendEntry>
    let runPage: UnsafeMutablePointer<kvm_run>
    let runSize: Int
    /// `runSize` as the canary's hot-path checks take it (never negative).
    let runBytes: UInt64
    /// Private copy of I/O data: handlers fill this, never the shared page.
    let scratch: UnsafeMutableRawPointer
    let control = VCPUControl()
    /// The exit canary's state: poison decision, exit history, repeated-fault counter.
    public let canary = VCPUCanary()
    public let hooks = VCPUHooks()
    let exits = Atomic<UInt64>(0)
    /// Set while the vCPU is parked in the middle of an instruction (a string instruction
    /// over MMIO chaining more exits than `completionLimit`): the exit in `kvm_run` was
    /// dispatched and its completion belongs to the loop's next `KVM_RUN`.
    let parkedMidInstruction = Atomic<Bool>(false)
    private let pad = CacheLinePad()

    init(vm: VirtualMachine, id: UInt32, vmFD: Int32, mmapSize: Int) throws(VMMError) {
        let kvmBackend = try KVMBackend(vmFD: vmFD, id: id, mmapSize: mmapSize)
        self.id = id
        self.vm = vm
        self.memory = vm.memory
        let entry = BackendEntry(kvmBackend)
        self.entry = entry
        self.entryRef = Unmanaged.passUnretained(entry)
        self.runPage = kvmBackend.runBuffer.bindMemory(to: kvm_run.self, capacity: 1)
        self.runSize = mmapSize
        self.runBytes = UInt64(truncatingIfNeeded: max(mmapSize, 0))
        self.scratch = .allocateIsolated(byteCount: mmapSize)
        VCPUControl.installKickHandler()
    }

    /// A vCPU driven by another backend (a `ScriptedVCPU`): no KVM, no VM. Handlers see
    /// it like any vCPU; `memory` is the guest memory they may touch.
    public init(id: UInt32, backend: any VCPUBackend, memory: GuestMemory) {
        self.id = id
        self.vm = nil
        self.memory = memory
        let entry = BackendEntry(backend)
        self.entry = entry
        self.entryRef = Unmanaged.passUnretained(entry)
        self.runPage = backend.runBuffer.bindMemory(to: kvm_run.self, capacity: 1)
        self.runSize = backend.runBufferSize
        self.runBytes = UInt64(truncatingIfNeeded: max(backend.runBufferSize, 0))
        self.scratch = .allocateIsolated(byteCount: backend.runBufferSize)
        VCPUControl.installKickHandler()
    }

    deinit {
        close()
        scratch.deallocate()
    }

    public var fd: Int32 { backend.fd }

    /// Returns from KVM_RUN in this vCPU's loop so far (every exit, kicks included).
    public var exitCount: UInt64 { exits.load(ordering: .relaxed) }

    /// The raw shared `kvm_run` page, for baselines and tools that drive KVM_RUN
    /// themselves. Handlers must not use it: the core owns it while the vCPU runs.
    public var unsafeRunPage: UnsafeMutablePointer<kvm_run> { runPage }

    /// Releases the vCPU fd (its number stays reserved, `KVMBackend.close`); `kvm_run`
    /// stays mapped until this object is freed. Its thread, if not the caller's, has
    /// been joined.
    func close() { backend.close() }

    func liveFD() throws(VMMError) -> Int32 {
        let value = fd
        guard value >= 0 else { throw backend.missingFDError(vcpu: id) }
        return value
    }

    // MARK: State

    public func registers() throws(VMMError) -> Registers { try backend.registers() }

    public func setRegisters(_ regs: Registers) throws(VMMError) { try backend.setRegisters(regs) }

    public func specialRegisters() throws(VMMError) -> SpecialRegisters {
        var s = kvm_sregs()
        _ = try ioctl(try liveFD(), CKVM_GET_SREGS, "KVM_GET_SREGS", &s)
        return s
    }

    public func setSpecialRegisters(_ sregs: SpecialRegisters) throws(VMMError) {
        var s = sregs
        _ = try ioctl(try liveFD(), CKVM_SET_SREGS, "KVM_SET_SREGS", &s)
        // Without an in-kernel LAPIC every KVM_RUN loads CR8 from the run page (QEMU
        // writes it before each entry): keep the page in step, or the next entry would
        // put back whatever the page held (0 on a fresh vCPU, e.g. a restored one).
        runPage.pointee.cr8 = sregs.cr8
    }

    public func fpu() throws(VMMError) -> FPUState {
        var f = kvm_fpu()
        _ = try ioctl(try liveFD(), CKVM_GET_FPU, "KVM_GET_FPU", &f)
        return f
    }

    public func setFPU(_ state: FPUState) throws(VMMError) {
        var f = state
        _ = try ioctl(try liveFD(), CKVM_SET_FPU, "KVM_SET_FPU", &f)
    }

    /// Reads MSRs by index. Throws if the kernel refuses any of them.
    public func msrs(_ indices: [UInt32]) throws(VMMError) -> [UInt64] {
        guard indices.count <= Int(CKVM_MAX_MSR_ENTRIES) else { throw .invalidArgument("at most \(CKVM_MAX_MSR_ENTRIES) MSRs per call") }
        var buffer = ckvm_msrs()
        buffer.nmsrs = UInt32(indices.count)
        withUnsafeMutableBytes(of: &buffer.entries) { raw in
            let entries = raw.bindMemory(to: kvm_msr_entry.self)
            for (i, index) in indices.enumerated() { entries[i] = kvm_msr_entry(index: index, reserved: 0, data: 0) }
        }
        let got = try ioctl(try liveFD(), CKVM_GET_MSRS, "KVM_GET_MSRS", &buffer)
        guard got == indices.count else {
            throw .invalidArgument("KVM_GET_MSRS: MSR \(hex(indices[Int(got)])) is not readable")
        }
        return withUnsafeBytes(of: &buffer.entries) { raw in
            raw.bindMemory(to: kvm_msr_entry.self).prefix(indices.count).map { $0.data }
        }
    }

    public func setMSRs(_ values: [(index: UInt32, value: UInt64)]) throws(VMMError) {
        guard values.count <= Int(CKVM_MAX_MSR_ENTRIES) else { throw .invalidArgument("at most \(CKVM_MAX_MSR_ENTRIES) MSRs per call") }
        var buffer = ckvm_msrs()
        buffer.nmsrs = UInt32(values.count)
        withUnsafeMutableBytes(of: &buffer.entries) { raw in
            let entries = raw.bindMemory(to: kvm_msr_entry.self)
            for (i, v) in values.enumerated() { entries[i] = kvm_msr_entry(index: v.index, reserved: 0, data: v.value) }
        }
        let set = try ioctl(try liveFD(), CKVM_SET_MSRS, "KVM_SET_MSRS", &buffer)
        guard set == values.count else {
            throw .invalidArgument("KVM_SET_MSRS: MSR \(hex(values[Int(set)].index)) was refused")
        }
    }

    /// `KVM_SET_CPUID2`; usually with `kvm.supportedCPUID()`, possibly edited.
    public func setCPUID(_ entries: [CPUIDEntry]) throws(VMMError) {
        guard entries.count <= Int(CKVM_MAX_CPUID_ENTRIES) else { throw .invalidArgument("too many CPUID entries (\(entries.count))") }
        let buffer = UnsafeMutablePointer<ckvm_cpuid>.allocate(capacity: 1)
        defer { buffer.deallocate() }
        buffer.initialize(to: ckvm_cpuid())
        buffer.pointee.nent = UInt32(entries.count)
        withUnsafeMutableBytes(of: &buffer.pointee.entries) { raw in
            let dst = raw.bindMemory(to: CPUIDEntry.self)
            for (i, e) in entries.enumerated() { dst[i] = e }
        }
        _ = try ioctl(try liveFD(), CKVM_SET_CPUID2, "KVM_SET_CPUID2", UnsafeMutableRawPointer(buffer))
    }

    public func events() throws(VMMError) -> VCPUEvents {
        var e = kvm_vcpu_events()
        _ = try ioctl(try liveFD(), CKVM_GET_VCPU_EVENTS, "KVM_GET_VCPU_EVENTS", &e)
        return e
    }

    public func setEvents(_ events: VCPUEvents) throws(VMMError) {
        var e = events
        _ = try ioctl(try liveFD(), CKVM_SET_VCPU_EVENTS, "KVM_SET_VCPU_EVENTS", &e)
    }

    /// KVM_MP_STATE_* (0 runnable, 1 uninitialized, 2 INIT received, 3 halted, 4 SIPI received).
    public func mpState() throws(VMMError) -> UInt32 {
        var s = kvm_mp_state()
        _ = try ioctl(try liveFD(), CKVM_GET_MP_STATE, "KVM_GET_MP_STATE", &s)
        return s.mp_state
    }

    public func setMPState(_ state: UInt32) throws(VMMError) {
        var s = kvm_mp_state(mp_state: state)
        _ = try ioctl(try liveFD(), CKVM_SET_MP_STATE, "KVM_SET_MP_STATE", &s)
    }

    /// `KVM_SET_GUEST_DEBUG`: single-step gives a `.debug` exit after each instruction.
    public func setGuestDebug(enabled: Bool, singleStep: Bool = false) throws(VMMError) {
        var d = kvm_guest_debug()
        if enabled { d.control = UInt32(KVM_GUESTDBG_ENABLE) }
        if singleStep { d.control |= UInt32(KVM_GUESTDBG_SINGLESTEP) }
        _ = try ioctl(try liveFD(), CKVM_SET_GUEST_DEBUG, "KVM_SET_GUEST_DEBUG", &d)
    }

    /// `KVM_TRANSLATE`: the guest-physical address of a guest-virtual one, or nil if unmapped.
    public func translate(_ virtualAddress: UInt64) throws(VMMError) -> UInt64? {
        try backend.translate(virtualAddress)
    }

    /// `KVM_INTERRUPT` (no in-kernel irqchip): queue an external interrupt vector.
    public func interrupt(vector: UInt32) throws(VMMError) {
        var i = kvm_interrupt(irq: vector)
        _ = try ioctl(try liveFD(), CKVM_INTERRUPT, "KVM_INTERRUPT", &i)
    }

    /// Asks KVM to exit with `.irqWindowOpen` as soon as the guest can take an interrupt.
    /// After the VM's `close()` it sets a page no entry reads any more: harmless.
    public var requestInterruptWindow: Bool {
        get { runPage.pointee.request_interrupt_window != 0 }
        set { runPage.pointee.request_interrupt_window = newValue ? 1 : 0 }
    }

    /// From the last exit: whether `KVM_INTERRUPT` would be accepted now.
    public var readyForInterruptInjection: Bool { runPage.pointee.ready_for_interrupt_injection != 0 }

    /// Stops the whole VM from inside a handler (e.g. a debug-exit device).
    public func requestVMStop(_ reason: StopReason) {
        if let vm { vm.requestStop(reason) } else { requestStop(reason) }
    }
}
