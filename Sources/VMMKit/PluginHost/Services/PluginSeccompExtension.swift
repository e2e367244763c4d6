import CVMMPlugin
import Glibc

/// The seccomp/1 extension (ABI 1.2): a plugin declares, during init, the system calls
/// its handlers make beyond `SeccompPolicy.vcpuDefault`; the VMM adds
/// `PluginHost.requestedSyscalls` to the policy its vCPU threads install.
enum PluginSeccompExtension {
    nonisolated(unsafe) static let table: UnsafeRawPointer = {
        let t = UnsafeMutablePointer<vmm_host_seccomp_t>.allocate(capacity: 1)
        t.initialize(to: vmm_host_seccomp_t())
        t.pointee.struct_size = UInt32(MemoryLayout<vmm_host_seccomp_t>.size)
        t.pointee.allow_syscall = { data, nr, errorOut in
            guard let plugin = PluginHandle.instance(data) else { return -ESHUTDOWN }
            guard plugin.onLoadThread else {
                plugin.setError("\(plugin.name): allow_syscall is only allowed during init", errorOut); return -EPERM
            }
            guard nr < 1024 else {
                plugin.setError("\(plugin.name): allow_syscall: \(nr) is not an x86_64 system call number", errorOut); return -EINVAL
            }
            plugin.syscalls.insert(Int32(nr))
            return 0
        }
        return UnsafeRawPointer(t)
    }()
}

extension PluginHost {
    /// The system calls the loaded plugins declared through seccomp/1 (numbers, x86_64):
    /// add them to the vCPU policy, e.g. `SeccompPolicy.vcpuDefault.allowing(numbers:)`.
    public var requestedSyscalls: Set<Int32> {
        instances.reduce(into: []) { $0.formUnion($1.syscalls) }
    }
}
