import CThreadLocal

/// Every thread VMMKit starts is named `vmm-…` (what `top -H`, `ps -L`, gdb and
/// /proc/PID/task/TID/comm show): a user can tell a vCPU from the fault router at a
/// glance, and a test can tell VMMKit's threads from the test runner's.
public enum ThreadName {
    /// The prefix every VMMKit thread name starts with.
    public static let prefix = "vmm-"

    /// Names the calling thread `vmm-<role>`, which the kernel cuts to 15 bytes.
    public static func setCurrent(_ role: String) {
        vmmkit_thread_set_name(prefix + role)
    }
}
