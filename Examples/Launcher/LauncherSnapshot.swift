import Glibc
import VMMKit
import VMMPaging
import VMMSnapshot

/// Snapshots the running launcher VM: the entry point for `--snapshot-on-stop` and for
/// the control API's `PUT /snapshot/create`. Holds what a snapshot needs; made once the
/// plugins are loaded.
final class LauncherSnapshot: @unchecked Sendable {
    let vm: VirtualMachine
    let dispatcher: ExitDispatcher
    let plugins: PluginHost
    let machine: LauncherMachine
    let devices: BuiltInDevices
    /// The demand pagers of the RAM (a lazily restored VM, memory-fault plugins): pages not
    /// paged in yet are copied from their source, not faulted in.
    let pagers: [DemandPager]
    /// One snapshot at a time: `--snapshot-on-stop` and the control API's could otherwise
    /// save the plugins' states and the VM on two threads at once (a stop during an API
    /// snapshot); the later waits for the earlier.
    private let exclusive = Lock(())

    init(vm: VirtualMachine, dispatcher: ExitDispatcher, plugins: PluginHost, options: LaunchOptions,
         devices: BuiltInDevices, pagers: [DemandPager] = []) {
        self.vm = vm
        self.dispatcher = dispatcher
        self.plugins = plugins
        self.pagers = pagers
        self.devices = devices
        machine = LauncherMachine(options)
    }

    /// Pauses every vCPU (those still running), saves the VM, every plugin's state, the
    /// launcher blob and its built-in devices' state into the new directory `dir`, then resumes the vCPUs it paused.
    /// Refuses (nothing written: the writer renames a finished directory into place)
    /// when a loaded plugin cannot save its state.
    @discardableResult
    func snapshot(to dir: String) throws(LauncherError) -> SnapshotWriter.Summary {
        try exclusive.withLock { (_) throws(LauncherError) in try snapshotExclusively(to: dir) }
    }

    private func snapshotExclusively(to dir: String) throws(LauncherError) -> SnapshotWriter.Summary {
        let blob = try machine.encodedForSaving()
        let running = vm.vcpus.filter { !$0.isPaused }
        for vcpu in running { vcpu.pause() }
        defer { for vcpu in running { vcpu.resume() } }
        // The built-in devices' interrupts wait until the irqchip is saved too (runs before the resume).
        self.devices.holdInterrupts()
        defer { self.devices.releaseInterrupts() }
        var devices: [DeviceState]
        do { devices = try plugins.saveStates() } catch {
            throw LauncherError(.snapshot, "cannot snapshot: \(error)")
        }
        devices.append(DeviceState(name: LauncherMachine.blobName, version: LauncherMachine.version, bytes: blob))
        // Read with the vCPUs paused, after the run loop's last completion.
        devices.append(DeviceState(name: BuiltInDeviceState.blobName, version: BuiltInDeviceState.version,
                                   bytes: self.devices.state.encoded()))
        // The user's fw_cfg files travel with the machine: a guest may be half-way through one.
        if let files = self.devices.fwCfg?.files, !files.isEmpty {
            devices.append(DeviceState(name: FwCfgFile.blobName, version: FwCfgFile.version, bytes: FwCfgFile.encode(files)))
        }
        do {
            return try VMSnapshot.save(vm, dispatcher: dispatcher, devices: devices, pagers: pagers, to: dir)
        } catch {
            throw LauncherError(.snapshot, "cannot snapshot: \(error)")
        }
    }
}
