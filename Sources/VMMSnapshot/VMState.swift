import CKVM
import VMMKit

/// Everything KVM holds for one vCPU that a snapshot saves, as the kernel's own structs.
public struct VCPUState: Sendable {
    public struct MSR: Sendable, Equatable {
        public var index: UInt32
        public var value: UInt64
        public init(index: UInt32, value: UInt64) { self.index = index; self.value = value }
    }

    public var id: UInt32
    public var registers: kvm_regs
    public var specialRegisters: kvm_sregs
    /// `KVM_GET_XSAVE2` bytes (at least 4096; more with AMX), or nil where the kernel
    /// has no XSAVE and `fpu` holds the legacy state instead.
    public var xsave: [UInt8]?
    public var fpu: kvm_fpu?
    public var xcrs: kvm_xcrs?
    public var debugRegisters: kvm_debugregs?
    /// Every MSR of `KVM_GET_MSR_INDEX_LIST` that this vCPU could read.
    public var msrs: [MSR]
    /// With an in-kernel irqchip only.
    public var lapic: kvm_lapic_state?
    public var events: kvm_vcpu_events
    public var mpState: UInt32
    public var cpuid: [CPUIDEntry]
    public var tscKHz: UInt32?
    /// `kvm_run.request_interrupt_window`: the VMM asked for an exit as soon as the
    /// guest can take an interrupt (a vector is waiting for it, e.g. an async-PF
    /// "ready" sent while IF = 0). It lives in the VMM's run page, not in KVM's vCPU
    /// state: a restore that dropped it would leave the vector waiting forever.
    public var interruptWindowRequested = false
}

/// One RAM region of the guest and where its bytes are in the memory file.
public struct RegionLayout: Sendable, Equatable {
    public var name: String
    public var guestAddress: UInt64
    public var size: UInt64
    public var backing: MemoryRegion.Backing
    public var readOnly: Bool
    /// Byte offset of the region's first page in the memory file (page aligned).
    public var fileOffset: UInt64

    public init(name: String, guestAddress: UInt64, size: UInt64, backing: MemoryRegion.Backing, readOnly: Bool, fileOffset: UInt64) {
        self.name = name
        self.guestAddress = guestAddress
        self.size = size
        self.backing = backing
        self.readOnly = readOnly
        self.fileOffset = fileOffset
    }
}

/// The VM-wide state: in-kernel interrupt controllers, PIT, kvmclock, the memory
/// layout, and every vCPU.
public struct VMState: Sendable {
    /// PIC master, PIC slave, IOAPIC (`KVM_GET_IRQCHIP` chips 0, 1, 2), when the VM has
    /// the in-kernel irqchip.
    public var irqchip: [kvm_irqchip]?
    /// The irqchip's GSI routing (`VirtualMachine.gsiRouting`); nil: KVM's default, as
    /// every snapshot written before VMMKit routed GSIs had (its guest's tables say so).
    public var gsiRouting: [GSIRoute]? = nil
    public var pit: kvm_pit_state2?
    public var clock: kvm_clock_data?
    public var regions: [RegionLayout]
    public var vcpus: [VCPUState]
}

/// Record tags of the state files (`vm.state`, `vcpuN.state`); Docs/SnapshotFormat.md.
enum StateTag: UInt32, CaseIterable {
    case regs = 1, sregs, xsave, fpu, xcrs, debugRegs, msrs, lapic, events, mpState, cpuid, tscKHz, interruptWindow
    case irqchip = 32, pit, clock, gsiRouting

    static func name(_ raw: UInt32) -> String {
        StateTag(rawValue: raw).map { "\($0)" } ?? "tag \(raw)"
    }
}
