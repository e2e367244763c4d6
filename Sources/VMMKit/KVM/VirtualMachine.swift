import CKVM
import Glibc
import Synchronization
import SystemPackage

/// One VM: its memory slots, its vCPUs and the VM-wide devices KVM emulates.
///
/// Ownership: the VM owns its vCPUs and its `GuestMemory`; `close()` (or deinit) stops
/// every vCPU thread, closes every vCPU fd and kvm_run mapping, unmaps every region and
/// closes the VM fd, in that order.
public final class VirtualMachine: @unchecked Sendable {
    public let kvm: KVM
    private let fdStorage: Atomic<Int32>
    /// The VM fd's number for this object's whole life (-1 for a detached VM): `close()`
    /// puts /dev/null over it (`FDPlaceholder`) and deinit closes it, so an ioctl racing
    /// `close()` never reaches a file another part of the process opened meanwhile.
    private let reservedFD: Int32
    public let memory: GuestMemory
    private let vcpuList = Lock<[VCPU]>([])
    public private(set) var hasIRQChip = false
    /// The GSI routing `setGSIRouting` last installed (a snapshot keeps it; KVM cannot
    /// report it), nil while KVM's own default stands.
    public internal(set) var gsiRouting: [GSIRoute]?
    /// Set by `createPIT()`: KVM then serves the PIT's ports 0x40-0x43 and 0x61 itself.
    public private(set) var hasPIT = false
    /// Why the VM was asked to stop as a whole (first reason wins), if it was.
    private let stopReasonStorage = Lock<StopReason?>(nil)
    /// Set by `close()`: `run` refuses a closed VM (a detached VM is never closed).
    private let isClosed = Atomic<Bool>(false)
    /// Coalesced writes queued by the kernel, replayed by the vCPU loops (CoalescedMMIO.swift).
    public let coalescedRing = CoalescedRing()
    /// The MSRs the installed `KVM_X86_SET_MSR_FILTER` denies (sorted), nil before any:
    /// asking for the same set again costs no ioctl (AsyncPFKVMPlumbing.swift says why).
    let installedMSRFilter = Lock<[UInt32]?>(nil)

    init(kvm: KVM, fd: Int32) {
        self.kvm = kvm
        self.fdStorage = Atomic(fd)
        self.reservedFD = fd
        self.memory = GuestMemory(vmFD: fd, kvm: kvm)
        _ = FDPlaceholder.devNull
        // Intel VMX without unrestricted guest needs an identity page table and a TSS
        // area below 4 GiB for real mode; harmless elsewhere. Where QEMU puts them (the
        // page, then three of TSS), so the range its `etc/e820` reserves is theirs here
        // too. Before any vCPU: KVM refuses to move the identity map after.
        var identity = Self.identityMapAddress
        _ = ckvm_ioctl(fd, CKVM_SET_IDENTITY_MAP_ADDR, &identity)
        _ = ckvm_ioctl_value(fd, CKVM_SET_TSS_ADDR, UInt(Self.identityMapAddress + 0x1000))
    }

    /// KVM's identity page table (one page) and real-mode TSS (three) for VMX, as QEMU
    /// places them (target/i386/kvm/kvm.c): reserved in the memory maps guests get.
    public static let identityMapAddress: UInt64 = 0xfeff_c000
    public static let identityMapSize: UInt64 = 0x4000

    /// A VM without KVM, for replaying a recorded run with its plugins and no /dev/kvm:
    /// `memory` is usually `GuestMemory.detached()`, vCPUs come from `adoptReplayVCPU`.
    /// Plugins load on it as on a real VM; what needs the kernel reports it is absent.
    public static func detached(memory: GuestMemory = .detached()) -> VirtualMachine {
        VirtualMachine(kvm: .unavailable(), memory: memory)
    }

    private init(kvm: KVM, memory: GuestMemory) {
        self.kvm = kvm
        self.fdStorage = Atomic(-1)
        self.reservedFD = -1
        self.memory = memory
    }

    /// Makes a vCPU built on another backend (a `ScriptedVCPU` replaying a recording)
    /// part of this detached VM, so plugins find it by id (registers, stop requests).
    public func adoptReplayVCPU(_ vcpu: VCPU) throws(VMMError) {
        guard fd < 0 else { throw .invalidArgument("adoptReplayVCPU: only a detached VM takes replayed vCPUs") }
        guard !vcpus.contains(where: { $0.id == vcpu.id }) else { throw .invalidArgument("adoptReplayVCPU: vCPU \(vcpu.id) is already there") }
        vcpu.vm = self
        vcpuList.withLock { $0.append(vcpu) }
    }

    deinit {
        close()
        if reservedFD >= 0 { Glibc.close(reservedFD) }
    }

    /// The VM fd, or -1 once closed (always -1 for a detached VM).
    public var fd: Int32 { fdStorage.load(ordering: .acquiring) }

    public var vcpus: [VCPU] { vcpuList.withLock { $0 } }

    /// Creates vCPU `id` (by default the lowest id no vCPU of this VM has) and maps its
    /// `kvm_run` page.
    @discardableResult
    public func createVCPU(id: UInt32? = nil) throws(VMMError) -> VCPU {
        let vmfd = try liveFD()
        let taken = Set(vcpus.map(\.id))
        let cpuID = id ?? (0...UInt32.max).first { !taken.contains($0) }!
        let vcpu: VCPU
        do throws(VMMError) {
            vcpu = try VCPU(vm: self, id: cpuID, vmFD: vmfd, mmapSize: kvm.vcpuMmapSize)
        } catch { throw closedOr(error) }
        // `close()` sets isClosed before it takes the list: a vCPU made while it ran is
        // either in the list it takes or refused here, never left running on its own.
        let added = vcpuList.withLock { list -> Bool in
            guard !isClosed.load(ordering: .acquiring) else { return false }
            list.append(vcpu)
            return true
        }
        guard added else {
            vcpu.close()
            throw .closed("virtual machine")
        }
        return vcpu
    }

    /// `KVM_ENABLE_CAP` on the VM.
    public func enableCapability(_ cap: UInt32, args: [UInt64] = []) throws(VMMError) {
        var request = kvm_enable_cap()
        request.cap = cap
        withUnsafeMutableBytes(of: &request.args) { raw in
            for (i, a) in args.prefix(4).enumerated() { raw.storeBytes(of: a, toByteOffset: i * 8, as: UInt64.self) }
        }
        _ = try vmIOCTL(CKVM_ENABLE_CAP, "KVM_ENABLE_CAP", &request)
    }

    /// Routes RDMSR/WRMSR of MSRs the kernel does not know (or that a filter denies) to
    /// user space as `.rdmsr`/`.wrmsr` exits (`KVM_CAP_X86_USER_SPACE_MSR`).
    public func enableUserSpaceMSRExits(reasons: UInt64 = UInt64(KVM_MSR_EXIT_REASON_UNKNOWN | KVM_MSR_EXIT_REASON_INVAL | KVM_MSR_EXIT_REASON_FILTER)) throws(VMMError) {
        guard kvm.hasExtension(KVM_CAP_X86_USER_SPACE_MSR) else {
            throw .capabilityMissing(name: "KVM_CAP_X86_USER_SPACE_MSR", what: "MSR exits to user space")
        }
        try enableCapability(UInt32(KVM_CAP_X86_USER_SPACE_MSR), args: [reasons])
    }

    /// Creates the in-kernel irqchip (PIC, IOAPIC, LAPICs) and routes its GSIs with
    /// `routing`: by default as QEMU's `pc` does on KVM (`pcGSIRouting`: the PIT's GSI 0
    /// reaches I/O APIC pin 2); nil leaves KVM's own (GSI n on I/O APIC pin n), what a
    /// snapshot written before VMMKit routed GSIs was taken with. With it HLT never exits.
    public func createIRQChip(routing: [GSIRoute]? = VirtualMachine.pcGSIRouting) throws(VMMError) {
        _ = try vmIOCTL(CKVM_CREATE_IRQCHIP, "KVM_CREATE_IRQCHIP")
        hasIRQChip = true
        if let routing { try setGSIRouting(routing) }
    }

    /// The GSIs `createIRQChip()` routes (`pcGSIRouting`), one per I/O APIC pin; the
    /// first 16 are the ISA IRQs, which reach the 8259s too (all but 2).
    public static let irqLines: UInt32 = 24

    /// Drives a GSI of the in-kernel irqchip (`KVM_IRQ_LINE`). The kernel accepts any
    /// number and drops a line nothing is routed to: refused here instead.
    public func setIRQLine(_ irq: UInt32, level: Bool) throws(VMMError) {
        guard irq < Self.irqLines else {
            throw .invalidArgument("IRQ line \(irq) does not exist: the in-kernel irqchip has GSIs 0 to \(Self.irqLines - 1)")
        }
        var line = kvm_irq_level()
        line.irq = irq
        line.level = level ? 1 : 0
        _ = try vmIOCTL(CKVM_IRQ_LINE, "KVM_IRQ_LINE", &line)
    }

    /// Sends an MSI (`KVM_SIGNAL_MSI`) to the in-kernel local APIC of the vCPU whose APIC
    /// id is `apicID`: a fixed, edge-triggered interrupt on `vector`. The LAPIC holds it
    /// until the guest can take it (IF = 1, no higher-priority vector in service); the
    /// guest must have its APIC software-enabled. Needs `createIRQChip()`.
    public func signalMSI(apicID: UInt32, vector: UInt8) throws(VMMError) {
        guard hasIRQChip else { throw .invalidArgument("KVM_SIGNAL_MSI needs the in-kernel irqchip (createIRQChip)") }
        guard vector >= 32 else { throw .invalidArgument("MSI vector \(vector) is below 32 (exceptions)") }
        var msi = kvm_msi()
        msi.address_lo = 0xfee0_0000 | ((apicID & 0xff) << 12)
        msi.data = UInt32(vector)
        let delivered = try vmIOCTL(CKVM_SIGNAL_MSI, "KVM_SIGNAL_MSI", &msi)
        guard delivered > 0 else { throw .ioctlFailed(name: "KVM_SIGNAL_MSI (vector \(vector), APIC \(apicID): blocked by the guest's APIC)", errno: .ioError) }
    }

    /// Asks every vCPU to stop; the first reason given is kept as the VM's.
    public func requestStop(_ reason: StopReason) {
        stopReasonStorage.withLock { if $0 == nil { $0 = reason } }
        for vcpu in vcpus { vcpu.requestStop(reason) }
    }

    /// The reason passed to the first `requestStop`, if any.
    public var stopReason: StopReason? { stopReasonStorage.withLock { $0 } }

    /// Starts one thread per vCPU, each running `dispatcher`, and waits for all of them.
    /// Returns each vCPU's stop reason, indexed like `vcpus`. If a vCPU cannot start (no
    /// thread, or already started by the caller), the ones this call started are stopped
    /// and joined before the error is thrown: they ran the guest on, unjoined, before.
    /// Throws `.closed` after `close()`.
    public func run(_ dispatcher: ExitDispatcher) throws(VMMError) -> [StopReason] {
        guard !isClosed.load(ordering: .acquiring) else { throw .closed("virtual machine") }
        let all = vcpus
        for (i, vcpu) in all.enumerated() {
            do { try vcpu.start(dispatcher) } catch {
                VCPU.stopAll(all[..<i])
                throw error
            }
        }
        return all.map { $0.join() }
    }

    /// Stops every vCPU thread, then releases vCPUs, memory and the VM fd. Idempotent.
    ///
    /// From a handler (on a vCPU thread of this VM) it cannot wait for that thread: it
    /// stops and joins the others, releases everything, and that vCPU's loop ends with
    /// `.requested` once the handler returns. Guest memory is unmapped before `close`
    /// returns: the handler must not use pointers into it afterwards (`GuestMemory`'s
    /// accessors throw). A vCPU object kept after close throws `.closed` from `run()`,
    /// `start` and its state accessors; `runLoop` returns `.error(.closed)`; `complete`
    /// and `requestInterruptWindow` do nothing that matters (its `kvm_run` page and fd
    /// number stay reserved until the object is freed). The VM's own calls (`createVCPU`,
    /// `setIRQLine`, `addIOEventFD`, `addIRQFD`, capabilities, irqchip and PIT state,
    /// coalesced zones, MSR filters) throw `.closed`, also from a thread that was inside
    /// one when `close()` ran: the VM fd's number stays reserved on /dev/null until this
    /// object is freed, so no call reaches a file opened meanwhile.
    public func close() {
        let vmfd = fdStorage.exchange(-1, ordering: .acquiringAndReleasing)
        guard vmfd >= 0 else { return }
        isClosed.store(true, ordering: .releasing)
        let all = vcpuList.withLock { list -> [VCPU] in defer { list = [] }; return list }
        for vcpu in all { vcpu.requestStop(.requested) }
        for vcpu in all { _ = vcpu.join(); vcpu.close() }
        memory.close()
        // The number stays reserved until deinit; without /dev/null the VM fd itself does.
        _ = FDPlaceholder.takeOver(vmfd)
    }

    func liveFD() throws(VMMError) -> Int32 {
        let value = fd
        guard value >= 0 else { throw .closed("virtual machine") }
        return value
    }

    /// `error`, or `.closed` when the VM was closed since its fd was read: the call then
    /// failed on the /dev/null that took the number over (ENOTTY), not on the VM.
    func closedOr(_ error: VMMError) -> VMMError { fd < 0 ? .closed("virtual machine") : error }

    /// An ioctl on the VM fd: `.closed` after `close()`, or when `close()` ran during it.
    func vmIOCTL<T>(_ request: UInt, _ name: StaticString, _ arg: inout T) throws(VMMError) -> Int32 {
        let vmfd = try liveFD()
        do throws(VMMError) { return try ioctl(vmfd, request, name, &arg) } catch { throw closedOr(error) }
    }

    func vmIOCTL(_ request: UInt, _ name: StaticString, value: UInt = 0) throws(VMMError) -> Int32 {
        let vmfd = try liveFD()
        do throws(VMMError) { return try ioctl(vmfd, request, name, value: value) } catch { throw closedOr(error) }
    }
}

extension VirtualMachine {
    /// The in-kernel PIT (`KVM_CREATE_PIT2`); needs the irqchip first. With
    /// `KVM_PIT_SPEAKER_DUMMY`, as Firecracker creates it: KVM serves port 0x61 too,
    /// channel 2's gate (bit 0), the speaker bit (1), a refresh bit that toggles every
    /// 16 µs (4) and channel 2's output (5), which is what guests poll to time a delay
    /// or calibrate the TSC. A user-space 0x61 could only read channel 2 through
    /// `KVM_GET_PIT2` and set its gate through `KVM_SET_PIT2`, which restarts every
    /// channel's count; and each poll would be an exit. The speaker bit is in
    /// `KVM_GET_PIT2`'s flags (`KVM_PIT_FLAGS_SPEAKER_DATA_ON`), so a snapshot keeps it.
    public func createPIT() throws(VMMError) {
        var config = kvm_pit_config()
        config.flags = UInt32(KVM_PIT_SPEAKER_DUMMY)
        _ = try vmIOCTL(CKVM_CREATE_PIT2, "KVM_CREATE_PIT2", &config)
        hasPIT = true
    }

    /// Holds the in-kernel PIT's channel 0 silent, or lets it run again, as an HPET in
    /// LegacyReplacement mode takes IRQ 0 over (`KVM_PIT_FLAGS_HPET_LEGACY`, as QEMU's
    /// `kvm_pit_irq_control`): while the flag is set KVM stops the channel's timer and
    /// starts none when the guest programs it; cleared, the channel counts again from its
    /// programmed count. A read, change and write of the PIT's state: a vCPU programming
    /// the PIT at that moment may find its write undone, as under QEMU.
    public func setPITSilenced(_ silenced: Bool) throws(VMMError) {
        var state = kvm_pit_state2()
        _ = try vmIOCTL(CKVM_GET_PIT2, "KVM_GET_PIT2", &state)
        let flag = UInt32(KVM_PIT_FLAGS_HPET_LEGACY)
        guard (state.flags & flag != 0) != silenced else { return }
        state.flags = silenced ? state.flags | flag : state.flags & ~flag
        _ = try vmIOCTL(CKVM_SET_PIT2, "KVM_SET_PIT2", &state)
    }

    /// After the vCPUs were paused: drops the periodic ticks of the in-kernel PIT the
    /// guest could not take meanwhile. Its timer ran on through the pause and KVM's
    /// reinject mode kept every tick, so the guest got them all at once on resume (111
    /// ticks in the 0.1 s after a 1 s pause at 100 Hz, where 10 come). Writing the state
    /// back, as QEMU does on resume (`kvm_pit_put`), restarts channel 0's period from
    /// now and empties the backlog; KVM reloads every channel's count so, channel 2's
    /// too (a one-shot there that had run out counts again), as under QEMU. Written only
    /// while channel 0 is periodic (modes 2 and 3: a one-shot owes at most one tick, and
    /// writing it would arm it again) and the HPET does not hold IRQ 0. Each call
    /// delays the next tick by up to a period. Does nothing in a VM without a PIT (ENXIO;
    /// ENOTTY where the kernel has no in-kernel I/O APIC). Call it with the vCPUs paused.
    public func restartPeriodicPIT() throws(VMMError) {
        let fd = try liveFD()
        var state = kvm_pit_state2()
        let rc = withUnsafeMutablePointer(to: &state) { ckvm_ioctl(fd, CKVM_GET_PIT2, UnsafeMutableRawPointer($0)) }
        if rc < 0, errno == ENXIO || errno == ENOTTY { // no PIT, or closed meanwhile (/dev/null)
            _ = try liveFD()
            return
        }
        if rc < 0 { _ = try vmIOCTL(CKVM_GET_PIT2, "KVM_GET_PIT2", &state) } // EINTR retried, or the error thrown
        guard state.channels.0.mode == 2 || state.channels.0.mode == 3 else { return }
        guard state.flags & UInt32(KVM_PIT_FLAGS_HPET_LEGACY) == 0 else { return } // the HPET holds IRQ 0: no timer
        _ = try vmIOCTL(CKVM_SET_PIT2, "KVM_SET_PIT2", &state)
    }
}
