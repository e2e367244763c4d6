import CSeccomp
import Glibc

/// A seccomp-bpf allow-list for vCPU threads (Firecracker's model): after setup, each
/// vCPU thread installs its own filter (`PR_SET_NO_NEW_PRIVS` + `SECCOMP_SET_MODE_FILTER`,
/// no TSYNC, so no other thread is affected) before its first `KVM_RUN`. The run loop,
/// exit handlers and plugin handlers on that thread may then make only the listed
/// system calls. A call outside the list is refused with EPERM and, with `.trapAndReport`,
/// reported: one line on stderr naming the vCPU and the call, and `Seccomp.refused`.
///
/// The filter is irreversible for the thread: a VMM that calls `runLoop` on a thread of
/// its own keeps the filter on that thread. x86_64 only; the i386 and x32 ABIs are refused.
/// The list and why each call is on it: `Docs/Seccomp.md`.
public struct SeccompPolicy: Sendable, Equatable {
    public enum Action: Sendable, Equatable {
        /// SIGSYS: the process's handler makes the call return -EPERM and reports it.
        case trapAndReport
        /// The call returns -EPERM silently (SECCOMP_RET_ERRNO).
        case errno
    }

    /// Allowed system call numbers (x86_64).
    public private(set) var allowed: Set<Int32>
    public var action: Action

    /// A policy allowing `numbers` (x86_64 system call numbers); add more with `allow`.
    public init(numbers: Set<Int32> = [], action: Action = .trapAndReport) {
        self.action = action
        allowed = numbers
    }

    init(allowing names: [String], action: Action = .trapAndReport) {
        self.init(numbers: Set(names.compactMap { Seccomp.number(of: $0) }), action: action)
    }

    /// What the vCPU run loop, exit handlers, plugin handlers, the demand pager and
    /// async-PF paths, logging and the kick signal need (see Docs/Seccomp.md).
    public static let vcpuDefault = SeccompPolicy(allowing: vcpuDefaultNames)

    static let vcpuDefaultNames = [
        // KVM_RUN and every other vCPU/VM ioctl; userfaultfd's UFFDIO_COPY/ZEROPAGE/WAKE.
        "ioctl",
        // Console and log output, eventfd signals, snapshot reads for the pager.
        "read", "write", "readv", "writev", "pread64", "pwrite64", "lseek", "fstat", "newfstatat",
        // Whether the console takes a line now (the UART, zero timeout), or it goes to its writer.
        "poll",
        // Locks and condition variables (pause/resume, pager waits), yields, short sleeps.
        "futex", "sched_yield", "nanosleep", "clock_nanosleep", "clock_gettime", "clock_getres", "gettimeofday",
        // The allocator (Swift runtime, malloc arenas) and a thread stack released at exit.
        "mmap", "munmap", "mremap", "mprotect", "madvise", "brk",
        // The kick signal (delivery and return), kicking other vCPUs, stop requests;
        // rt_sigaction: a fatal signal's handlers put the default action back to end
        // the process by the signal (the terminal restore, the fatal-signal guard).
        "rt_sigaction", "rt_sigreturn", "rt_sigprocmask", "restart_syscall", "tgkill", "tkill", "gettid", "getpid",
        // Thread and process exit (a guest's debug-exit ends the process from a vCPU).
        "exit", "exit_group",
        // Random numbers for Swift hashing and SystemRandomNumberGenerator.
        "getrandom",
        // Closing an fd a handler owns (an eventfd, a page source's file on error);
        // dup3: a handler closing its own VM puts /dev/null over each vCPU fd number.
        "close", "dup3",
    ]

    /// Adds a system call by name; false if the name is unknown to the table.
    @discardableResult
    public mutating func allow(_ name: String) -> Bool {
        let nr = cseccomp_number(name)
        guard nr >= 0 else { return false }
        allowed.insert(nr)
        return true
    }

    /// Adds system call numbers (e.g. those plugins declared, `PluginHost.requestedSyscalls`).
    public mutating func allow(numbers: some Sequence<Int32>) { allowed.formUnion(numbers) }

    public func allowing(numbers: some Sequence<Int32>) -> SeccompPolicy {
        var p = self
        p.allow(numbers: numbers)
        return p
    }

    /// The filter holds one compare per call: at most this many calls.
    public static let maximumCount = 250

    /// Installs the filter on the calling thread. `vcpuID` names the thread in reports.
    func install(vcpuID: UInt32) throws(VMMError) {
        guard allowed.count <= Self.maximumCount else {
            throw .invalidArgument("seccomp: \(allowed.count) allowed system calls, at most \(Self.maximumCount)")
        }
        if action == .trapAndReport { cseccomp_install_handler(Seccomp.reportFD) }
        // A fault on this thread must still end the process by its signal: the Swift
        // runtime's crash reporter cannot run under the filter (Docs/Seccomp.md).
        cseccomp_install_fatal_guard()
        let numbers = allowed.sorted().map { UInt32(bitPattern: $0) }
        let rc = numbers.withUnsafeBufferPointer {
            cseccomp_install($0.baseAddress, $0.count, action == .errno ? Int32(CSECCOMP_ERRNO.rawValue) : Int32(CSECCOMP_TRAP.rawValue),
                             Int32(truncatingIfNeeded: vcpuID))
        }
        guard rc == 0 else { throw .systemCallFailed(name: "seccomp(SECCOMP_SET_MODE_FILTER)", errno: .init(rawValue: -rc)) }
    }
}

/// Process-wide seccomp reporting.
public enum Seccomp {
    /// One refused call: its number and name, the vCPU whose thread made it (-1: another thread).
    public struct Refusal: Sendable, Equatable, CustomStringConvertible {
        public let number: Int32
        public let vcpuID: Int32
        public let threadID: Int32
        public var name: String? { Seccomp.name(of: number) }
        public var description: String {
            "vCPU \(vcpuID) made system call \(number)\(name.map { " (\($0))" } ?? ""): refused with EPERM"
        }
    }

    /// Where report lines go (stderr); set before the first vCPU with a filter starts.
    nonisolated(unsafe) public static var reportFD: Int32 = 2

    /// Calls refused so far in this process (trap-and-report filters).
    public static var refusedCount: UInt64 { cseccomp_refused_count() }

    /// The last refusals (up to 64), newest first.
    public static var recentRefusals: [Refusal] {
        var out: [Refusal] = []
        var i: UInt64 = 0
        var nr: Int32 = 0, vcpu: Int32 = 0, tid: Int32 = 0
        while i < 64, cseccomp_refused(i, &nr, &vcpu, &tid) != 0 {
            out.append(Refusal(number: nr, vcpuID: vcpu, threadID: tid))
            i += 1
        }
        return out
    }

    /// The x86_64 number of a system call, or nil if the table does not know the name.
    public static func number(of name: String) -> Int32? {
        let nr = cseccomp_number(name)
        return nr >= 0 ? nr : nil
    }

    public static func name(of number: Int32) -> String? { cseccomp_name(number).map { String(cString: $0) } }
}

extension VirtualMachine {
    /// Sets the seccomp policy of every vCPU created so far (nil: none); each installs
    /// it on its thread when it starts. Set it before `run`/`start`.
    public func setSeccomp(_ policy: SeccompPolicy?) {
        for vcpu in vcpus { vcpu.hooks.seccomp = policy }
    }
}

extension VCPU {
    /// Installs `hooks.seccomp` on the calling thread (the vCPU's), if set.
    func applySeccomp() -> StopReason? {
        guard let policy = hooks.seccomp else { return nil }
        do { try policy.install(vcpuID: id) } catch { return .error(error) }
        return nil
    }
}
