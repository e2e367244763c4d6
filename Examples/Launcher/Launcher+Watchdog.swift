import Glibc
import VMMKit

extension Launcher {
    /// `--handler-budget`: a plugin handler call running longer ends the run with status
    /// 8, naming the plugin, the handler, the vCPU and the exit. The VM is asked to stop;
    /// if the handler has not returned a second later the process exits (plugin code
    /// runs in process and cannot be cancelled).
    ///
    /// A plugin's `init`, `destroy` or state save or restore that overruns runs on the
    /// launcher's own thread, outside any run that could stop: the process exits at once.
    func watchHandlers(_ plugins: PluginHost, stuck: StuckRunExit) throws(LauncherError) {
        let vm = plugins.vm
        plugins.onHandlerOverrun = { overrun in
            if overrun.isLifecycle {
                ExitStats.err("vmm: \(overrun.description.asOneLine); it has not returned: exiting\n")
                exit(LauncherStatus.plugin.rawValue)
            }
            vm.requestStop(.handlerFailed(overrun.description))
            stuck.arm(status: LauncherStatus.plugin.rawValue) {
                "vmm: vCPU \(overrun.vcpuID): handler failed: \(overrun.description); it has not returned: exiting\n"
            }
        }
        // The budget was validated with the options: what fails here is the host (no thread).
        do { try plugins.setHandlerBudget(options.handlerBudget) } catch {
            throw LauncherError(.host, "cannot watch plugin handlers (--handler-budget): \(error)")
        }
    }

    /// What guards the vCPUs of every run, booted or restored: the seccomp allow-list
    /// (unless `--no-seccomp`) and the `--max-seconds` timer, whose stop, if a handler
    /// holds a vCPU, ends the process naming it.
    func guardVCPUs(_ vm: VirtualMachine, _ plugins: PluginHost, stuck: StuckRunExit) throws(LauncherError) -> Watchdog? {
        if !options.noSeccomp { vm.setSeccomp(SeccompPolicy.vcpuDefault.allowing(numbers: plugins.requestedSyscalls)) }
        guard let seconds = options.maxSeconds else { return nil }
        do {
            return try Watchdog(seconds: seconds, vm: vm) { stuck.arm(status: LauncherStatus.timeout.rawValue) {
                Self.stillRunning(plugins, "stopped after --max-seconds \(seconds)")
            } }
        } catch {
            throw LauncherError(.host, "cannot start the --max-seconds timer: \(error)")
        }
    }

    /// One line for a run that was asked to stop and did not: which handlers hold it.
    static func stillRunning(_ plugins: PluginHost, _ what: String) -> String {
        let calls = plugins.handlerCallsInProgress()
        guard !calls.isEmpty else { return "vmm: \(what); the vCPUs did not stop: exiting\n" }
        let list = calls.sorted { $0.vcpuID < $1.vcpuID }
            .map { "vCPU \($0.vcpuID) in plugin handler \($0.handler) handling \($0.exit)" }
        return "vmm: \(what); still running: \(list.joined(separator: "; ")) (plugin code cannot be cancelled): exiting\n"
    }
}
