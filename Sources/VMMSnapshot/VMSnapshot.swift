import VMMKit
import VMMPaging

/// The library's snapshot operations in one place, as a VMM calls them.
public enum VMSnapshot {
    /// Saves `vm` — every vCPU paused or stopped — into the new directory `dir`:
    /// completes pending I/O, replays the coalesced ring through `dispatcher`, captures
    /// VM and vCPU state, writes memory sparse, then `devices`' blobs. The VM stays
    /// paused; resume or stop it afterwards. In a lazily restored VM (or a region a
    /// `DemandPager` serves) pages not paged in yet are copied from the pager's source —
    /// the old snapshot — instead of being faulted in: from `pagers` if given, else from
    /// the live pagers of each region (`DemandPager.pagers(serving:)`).
    @discardableResult
    public static func save(_ vm: VirtualMachine, dispatcher: ExitDispatcher?, devices: [DeviceState] = [],
                            pagers: [DemandPager] = [], to dir: String) throws(SnapshotError) -> SnapshotWriter.Summary {
        let state = try VMState.capture(vm, dispatcher: dispatcher)
        return try SnapshotWriter.write(state, memory: vm.memory, devices: devices, pagers: pagers, to: dir)
    }

    /// Opens, checks and restores the snapshot in `dir` on `kvm`.
    public static func restore(from dir: String, on kvm: KVM, memory mode: SnapshotImage.MemoryMode = .lazy) throws(SnapshotError) -> RestoredVM {
        try SnapshotImage(path: dir).restore(on: kvm, memory: mode)
    }
}
