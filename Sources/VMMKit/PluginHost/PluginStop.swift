import Glibc

/// A plugin's `request_stop` the host accepted, as `PluginHost.stopHandler` receives it.
public struct PluginStopRequest: Sendable, Equatable, CustomStringConvertible {
    /// The plugin's id.
    public let plugin: String
    /// The vCPU it stops, nil for the whole VM (vcpu_id -1).
    public let vcpu: UInt32?
    /// The exit code it asked for: the VM's result if it is the first stop.
    public let code: Int32
    /// Its reason, as given (at most 4096 bytes); never empty (a request without one is
    /// not reported: the guest's own exit through DebugExit is no news).
    public let reason: String

    /// "plugin org.example.disk asked to stop the VM (code 3): disk on fire", on one line.
    public var description: String {
        "plugin \(plugin) asked to stop \(vcpu.map { "vCPU \($0)" } ?? "the VM") (code \(code)): \(reason.asOneLine)"
    }
}

extension PluginHost {
    /// `stopHandler`'s default: the request on one line on stderr.
    @Sendable public static func standardStop(_ request: PluginStopRequest) {
        let line = "\(request)\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
    }
}

extension PluginInstance {
    /// request_stop: the vCPU named (or the whole VM for -1) stops after its current
    /// exit. The call returns nothing (its type is frozen by the ABI), so a vcpu_id that
    /// names no vCPU is refused with an error line and nothing stops; any id below -1
    /// was taken for the whole VM, any unknown one ignored without a word.
    func requestStop(vcpuID: Int32, code: Int32, reason: String) {
        let vm = host.vm
        let vcpu = vcpuID >= 0 ? vm.vcpus.first { $0.id == UInt32(vcpuID) } : nil
        guard vcpuID == -1 || vcpu != nil else {
            let known = vm.vcpus.isEmpty ? "it has none yet" : "its vCPUs are \(vm.vcpus.map { "\($0.id)" }.joined(separator: ", "))"
            return log(.error, library.id, "request_stop refused: the VM has no vCPU \(vcpuID) (-1 stops the whole VM; "
                + "\(known)); nothing was stopped")
        }
        log(.info, library.id, "stop requested (code \(code))\(reason.isEmpty ? "" : ": " + reason)")
        let request = PluginStopRequest(plugin: library.id, vcpu: vcpu?.id, code: code, reason: reason)
        // From init, on its thread: held until init succeeds, as its registrations are
        // (a refused plugin leaves nothing behind, a stop of the VM included).
        if onLoadThread { return stopsFromInit.append(request) }
        apply(request)
    }

    func apply(_ request: PluginStopRequest) {
        if !request.reason.isEmpty { reportStop(request) }
        if let id = request.vcpu, let vcpu = host.vm.vcpus.first(where: { $0.id == id }) {
            vcpu.requestStop(.guestExit(code: request.code))
        } else if request.vcpu == nil {
            host.vm.requestStop(.guestExit(code: request.code))
        }
    }
}
