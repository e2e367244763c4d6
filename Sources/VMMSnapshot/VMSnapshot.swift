import VMMKit

/// The library's snapshot operations in one place, as a VMM calls them.
public enum VMSnapshot {
    /// Saves `vm` — every vCPU paused or stopped — into the new directory `dir`:
    /// completes pending I/O, replays the coalesced ring through `dispatcher`, captures
    /// VM and vCPU state, writes memory sparse, then `devices`' blobs. The VM stays
    /// paused; resume or stop it afterwards.
    @discardableResult
    public static func save(_ vm: VirtualMachine, dispatcher: ExitDispatcher?, devices: [DeviceState] = [],
                            to dir: String) throws(SnapshotError) -> SnapshotWriter.Summary {
        let state = try VMState.capture(vm, dispatcher: dispatcher)
        return try SnapshotWriter.write(state, memory: vm.memory, devices: devices, to: dir)
    }

    /// Opens, checks and restores the snapshot in `dir` on `kvm`.
    public static func restore(from dir: String, on kvm: KVM, memory mode: SnapshotImage.MemoryMode = .lazy) throws(SnapshotError) -> RestoredVM {
        try SnapshotImage(path: dir).restore(on: kvm, memory: mode)
    }
}
