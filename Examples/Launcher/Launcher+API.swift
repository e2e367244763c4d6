import VMMControl
import VMMAsyncPF
import VMMKit
import VMMPaging

extension Launcher {
    /// `--api-sock`: the VM's controller, served on the socket until the run ends.
    /// PUT /snapshot/create saves the paused VM with every plugin's state
    /// (`LauncherSnapshot`, as `--snapshot-on-stop` does); `vmm restore DIR` resumes it.
    func startAPI(vm: VirtualMachine, exitCounter: ExitKindCounter?, pager: DemandPager?,
                  asyncPF: PluginAsyncPF?, snapshot: LauncherSnapshot) throws(LauncherError) -> APIServer? {
        guard let path = options.apiSock else { return nil }
        let controller = VMController(vm: vm, exitCounter: exitCounter)
        controller.setSnapshotHook { _, dir in try snapshot.snapshot(to: dir) }
        if let power = devices.powerManagement { controller.setPowerButton { power.pressPowerButton() } }
        controller.setScreen { [memory = vm.memory, vga = devices.vga] () throws(ControlError) in
            switch VGATextScreen.read(memory, vga) {
            case .success(let text): return text
            case .failure(let refusal): throw .conflict(refusal.why)
            }
        }
        if let i8042 = devices.i8042 {
            controller.setMouse { (event) throws(ControlError) in
                // Screen directions to the mouse's: y up.
                guard i8042.moveMouse(dx: Int32(clamping: event.dx), dy: Int32(clamping: -event.dy), wheel: Int32(clamping: event.wheel), buttons: event.buttons) else {
                    throw .conflict("the guest has not switched the mouse's reporting on (command 0xf4 through 0xd4): QEMU's drops such motion")
                }
            }
        }
        if devices.bochs != nil || devices.vga != nil {
            let source = Screendump.Source(devices, memory: vm.memory)
            controller.setScreendump { (path) throws(ControlError) in try Screendump.write(source, toFile: path) }
        }
        if let i8042 = devices.i8042 {
            controller.setKeyboard { (combinations) throws(ControlError) in
                do throws(PS2Keyboard.Refusal) { try i8042.sendKeys(combinations) } catch {
                    if case .badKeys = error { throw .badRequest(error.message) }
                    throw .conflict(error.message)
                }
            }
        }
        if let pager {
            controller.addCounters("demand_paging") {
                let s = pager.statistics
                return [("pages_fetched", UInt64(s.pagesFetched)), ("installed_by_vcpu", UInt64(s.installedByVCPU)),
                        ("installed_by_router", UInt64(s.installedByRouter)), ("vcpu_kicks", UInt64(s.kicks)),
                        ("source_failures", UInt64(s.sourceFailures)), ("kernel_worker_faults", UInt64(s.kernelWorkerFaults))]
            }
        }
        if let asyncPF {
            controller.addCounters("async_pf") {
                [("not_present_injected", asyncPF.asyncFaults), ("pages_ready", asyncPF.backgroundInstalls)]
            }
        }
        let server = try APIServer.start(path: path, controller: controller) { why in
            options.rangeError(key: "apiSock", flag: "api-sock", why)
        }
        log.info("control API on \(path)")
        return server
    }
}
