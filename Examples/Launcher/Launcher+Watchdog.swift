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
    /// (unless `--no-seccomp`), the stop on SIGTERM, SIGINT or SIGHUP, and the
    /// `--max-seconds` timer; a stop that a handler holding a vCPU keeps from ending the
    /// run ends the process, naming it.
    func guardVCPUs(_ vm: VirtualMachine, _ plugins: PluginHost, stuck: StuckRunExit) throws(LauncherError) -> RunGuards {
        if !options.noSeccomp {
            var policy = SeccompPolicy.vcpuDefault.allowing(numbers: plugins.requestedSyscalls)
            // The disk's FLUSH CACHE runs on the vCPU that issues it.
            if options.hda != nil { policy.allow("fdatasync") }
            vm.setSeccomp(policy)
        }
        let signals: SignalStop.Watch
        do {
            signals = try SignalStop.Watch(vm: vm) { sig in stuck.arm(status: 128 + sig) {
                Self.stillRunning(plugins, "stopped by \(SignalStop.name(sig))")
            } }
        } catch {
            throw LauncherError(.host, "cannot watch for SIGTERM: \(error)")
        }
        guard let seconds = options.maxSeconds else { return RunGuards(timer: nil, signals: signals) }
        do {
            let timer = try Watchdog(seconds: seconds, vm: vm) { stuck.arm(status: LauncherStatus.timeout.rawValue) {
                Self.stillRunning(plugins, "stopped after \(options.maxSecondsGiven)")
            } }
            return RunGuards(timer: timer, signals: signals)
        } catch {
            signals.cancel()
            throw LauncherError(.host, "cannot start the --max-seconds timer: \(error)")
        }
    }

    /// Runs the machine to its end under `guards`, which end with it however it ends
    /// (a vCPU thread that cannot start included: they must not outlive the run, nor act
    /// on the closing VM); the outcome and whether --max-seconds fired.
    func run(_ supervisor: VMSupervisor, _ dispatcher: ExitDispatcher, guards: RunGuards, stuck: StuckRunExit,
             api: APIServer?) throws(LauncherError) -> (outcome: VMSupervisor.Outcome, timedOut: Bool) {
        let outcome: VMSupervisor.Outcome
        do { outcome = try supervisor.run(dispatcher) { api?.open() } } catch {
            _ = guards.end()
            throw LauncherError(.host, error.description)
        }
        stuck.runFinished()
        return (outcome, guards.end())
    }

    /// The threads that may stop a run from outside: `--max-seconds` and the signals.
    struct RunGuards {
        let timer: Watchdog?
        let signals: SignalStop.Watch

        /// Ends both once the run is over; whether --max-seconds had fired.
        func end() -> Bool {
            signals.cancel()
            return timer?.cancel() ?? false
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
