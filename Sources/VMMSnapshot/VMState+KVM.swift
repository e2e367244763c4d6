import CKVM
import Glibc
import VMMKit

extension VMState {
    /// Reads the state of `vm`, whose vCPUs must all be paused or stopped. Pending I/O
    /// is completed first (`completePendingIO`) and the coalesced ring replayed through
    /// `dispatcher`, so no write the guest made is lost. `fileOffset`s lay the regions
    /// out back to back in the memory file.
    public static func capture(_ vm: VirtualMachine, dispatcher: ExitDispatcher?) throws(SnapshotError) -> VMState {
        let vcpus = vm.vcpus
        guard !vcpus.isEmpty else { throw .refused("the VM has no vCPUs") }
        for vcpu in vcpus where vcpu.isRunning && !vcpu.isPaused {
            throw .refused("vCPU \(vcpu.id) is running: pause the VM first")
        }
        if let dispatcher, let reason = vm.drainCoalescedRing(dispatcher, on: vcpus[0]) {
            throw .refused("replaying the coalesced ring before the snapshot stopped the VM: \(reason)")
        }
        do {
            for vcpu in vcpus { try vcpu.completePendingIO() }
        } catch { throw .system(error) }
        let kvm = vm.kvm
        let msrIndices = try kvm.msrIndexList()
        var state = VMState(irqchip: nil, pit: nil, clock: nil, regions: [], vcpus: [])
        let fd = vm.fd // held by `vm`, the number names this VM or (once closed) /dev/null
        guard fd >= 0 else { throw .system(.closed("virtual machine")) }
        if vm.hasIRQChip {
            var chips: [kvm_irqchip] = []
            for id in 0..<3 as Range<UInt32> {
                var chip = kvm_irqchip()
                chip.chip_id = id
                try stateIOCTL(fd, CKVM_GET_IRQCHIP, "KVM_GET_IRQCHIP (chip \(id))", &chip)
                chips.append(chip)
            }
            state.irqchip = chips
            state.gsiRouting = vm.gsiRouting
            var pit = kvm_pit_state2()
            // ENXIO: the VM has no PIT (createPIT was not called).
            if ckvm_ioctl(fd, CKVM_GET_PIT2, &pit) == 0 { state.pit = pit }
        }
        if kvm.hasExtension(KVM_CAP_ADJUST_CLOCK) {
            var clock = kvm_clock_data()
            try stateIOCTL(fd, CKVM_GET_CLOCK, "KVM_GET_CLOCK", &clock)
            state.clock = clock
        }
        var offset: UInt64 = 0
        for region in vm.memory.regions {
            state.regions.append(RegionLayout(name: region.name, guestAddress: region.guestAddress, size: region.size,
                                              backing: region.backing, readOnly: region.readOnly, fileOffset: offset))
            offset += region.size
        }
        for vcpu in vcpus {
            state.vcpus.append(try VCPUState.capture(vcpu, kvm: kvm, msrIndices: msrIndices, hasIRQChip: vm.hasIRQChip))
        }
        return state
    }

    /// The capabilities restoring this state needs, by manifest name.
    var requiredCapabilities: [StateCapability] {
        var caps: [StateCapability] = [.vcpuEvents, .mpState]
        if irqchip != nil { caps.append(.irqchip) }
        if pit != nil { caps.append(.pitState2) }
        if clock != nil { caps.append(.adjustClock) }
        if vcpus.contains(where: { $0.events.flags & UInt32(KVM_VCPUEVENT_VALID_PAYLOAD) != 0 }) { caps.append(.exceptionPayload) }
        if let first = vcpus.first {
            if first.xsave != nil { caps.append(.xsave) }
            if let x = first.xsave, x.count > MemoryLayout<kvm_xsave>.size { caps.append(.xsave2) }
            if first.xcrs != nil { caps.append(.xcrs) }
            if first.debugRegisters != nil { caps.append(.debugRegs) }
        }
        return caps
    }

    /// Creates a VM shaped like this state on `kvm`: irqchip and PIT, regions (empty:
    /// the caller fills them eagerly or attaches a pager), vCPUs with their state, then
    /// the VM-wide devices and the clock.
    public func makeVM(on kvm: KVM) throws(SnapshotError) -> VirtualMachine {
        do {
            let vm = try kvm.createVM()
            do {
                if irqchip != nil { try vm.createIRQChip(routing: gsiRouting) }
                if pit != nil { try vm.createPIT() }
                // Events saved by a VM that had exception payloads on (async PF injects
                // #PF with its CR2 that way) carry KVM_VCPUEVENT_VALID_PAYLOAD, which
                // KVM_SET_VCPU_EVENTS refuses (EINVAL) unless the new VM has them on too.
                if vcpus.contains(where: { $0.events.flags & UInt32(KVM_VCPUEVENT_VALID_PAYLOAD) != 0 }) {
                    try vm.enableExceptionPayload()
                }
                for region in regions {
                    // Anonymous memory takes userfaultfd and is the cheapest to fill; a
                    // memfd region stays a memfd (it may be shared after restore).
                    let backing: MemoryRegion.Backing = region.backing == .memfd ? .memfd : .anonymous
                    try vm.memory.addRegion(name: region.name, guestAddress: region.guestAddress, size: region.size,
                                            backing: backing, readOnly: region.readOnly)
                }
                for v in vcpus {
                    let vcpu = try vm.createVCPU(id: v.id)
                    try v.restore(into: vcpu, kvm: kvm)
                }
                try restoreDevices(vm)
                return vm
            } catch {
                vm.close()
                throw error
            }
        } catch let error as SnapshotError {
            throw error
        } catch let error as VMMError {
            throw .system(error)
        } catch {
            throw .refused("\(error)")
        }
    }

    private func restoreDevices(_ vm: VirtualMachine) throws(SnapshotError) {
        let fd = vm.fd
        if var pit { try stateIOCTL(fd, CKVM_SET_PIT2, "KVM_SET_PIT2", &pit) }
        if let irqchip {
            for var chip in irqchip { try stateIOCTL(fd, CKVM_SET_IRQCHIP, "KVM_SET_IRQCHIP (chip \(chip.chip_id))", &chip) }
        }
        if var clock {
            // Only the clock value is restored: the source's realtime/host_tsc pairing
            // means nothing on another host or after a pause of unknown length.
            clock.flags = 0
            clock.realtime = 0
            clock.host_tsc = 0
            try stateIOCTL(fd, CKVM_SET_CLOCK, "KVM_SET_CLOCK", &clock)
        }
    }
}
