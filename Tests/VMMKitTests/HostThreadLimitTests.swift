import Glibc
import Testing

/// A host that cannot start another thread (a pids cgroup at its limit, `RLIMIT_NPROC`):
/// each of the launcher's threads that guards a run ends it with status 20 naming the
/// thread, rather than a run without its guard (`--max-seconds` never firing, a handler
/// budget never enforced) or a join of a thread that never existed.
@Suite("Host threads: a thread that cannot start ends the run, naming it", .serialized)
struct HostThreadLimitTests {
    /// The cgroup v1 pids controller, where this machine mounts it (root only).
    static let pidsRoot = "/sys/fs/cgroup/pids"

    /// `vmm run` in a fresh pids cgroup allowing `tasks` threads in all; nil (with the
    /// reason printed) where this host offers no pids cgroup to create.
    static func runLimited(tasks: Int, _ args: [String]) throws -> VMMProcess.Result? {
        let group = "\(pidsRoot)/vmmkit-test-\(getpid())"
        guard mkdir(group, 0o755) == 0 || errno == EEXIST else {
            print("HostThreadLimitTests: cannot create \(group) (errno \(errno)): skipped")
            return nil
        }
        defer { rmdir(group) }
        let limit = open(group + "/pids.max", O_WRONLY)
        guard limit >= 0 else {
            print("HostThreadLimitTests: no pids.max in \(group): skipped")
            return nil
        }
        _ = "\(tasks)".withCString { write(limit, $0, strlen($0)) }
        close(limit)
        // The shell moves itself into the group, then becomes `vmm`: one task.
        let script = "echo $$ > \(group)/cgroup.procs && exec \"$0\" \"$@\""
        return Spawned("/bin/sh", ["-c", script, VMMProcess.binary, "run"] + args).wait()
    }

    /// A file's bytes, nil if it cannot be read.
    static func contents(_ path: String) -> [UInt8]? {
        guard let f = fopen(path, "r") else { return nil }
        defer { fclose(f) }
        var out: [UInt8] = []
        while true { let c = fgetc(f); if c == EOF { break }; out.append(UInt8(c)) }
        return out
    }

    static let args = [VMMProcess.guest("hello64.elf"), "--no-default-plugins", "--serial", "none", "--max-seconds", "30"]

    @Test("no thread for the plugin watchdog, the signal stop, the --max-seconds timer, the halt watcher, a vCPU, KVM's worker, the RTC's or the HPET's interrupts: status 20, one line each; a UART console that keeps up takes none")
    func eachGuardThread() throws {
        guard let watchdog = try Self.runLimited(tasks: 1, Self.args) else { return }
        #expect(watchdog.status == 20)
        #expect(watchdog.stderr == "vmm: cannot watch plugin handlers (--handler-budget): pthread_create of the watchdog thread failed: Resource temporarily unavailable (errno 11)\n")
        // No thread for the RTC's interrupts: this guest never enables one.
        let signals = try #require(try Self.runLimited(tasks: 2, Self.args))
        #expect(signals.status == 20)
        #expect(signals.stderr == "vmm: cannot watch for SIGTERM: pthread_create of the signal-stop thread failed: Resource temporarily unavailable (errno 11)\n")
        let timer = try #require(try Self.runLimited(tasks: 3, Self.args))
        #expect(timer.status == 20)
        #expect(timer.stderr == "vmm: cannot start the --max-seconds timer: pthread_create of the time-limit thread failed: Resource temporarily unavailable (errno 11)\n")
        // With the in-kernel irqchip (the default) the halt watcher starts before the
        // vCPUs: no guest code has run when it cannot.
        let halt = try #require(try Self.runLimited(tasks: 4, Self.args))
        #expect(halt.status == 20)
        #expect(halt.stderr == "vmm: pthread_create of the halt-watch thread failed: Resource temporarily unavailable (errno 11)\n")
        let vcpu = try #require(try Self.runLimited(tasks: 5, Self.args))
        #expect(vcpu.status == 20)
        #expect(vcpu.stderr == "vmm: pthread_create of the vcpu0 thread failed: Resource temporarily unavailable (errno 11)\n")
        // Without an irqchip there is no halt watcher: the next task the host is refused
        // is the kernel's own (kvm-nx-lpage-recovery, started at the first KVM_RUN), and
        // every KVM_RUN then fails with EAGAIN. The core took that for a kick and spun.
        let kernel = try #require(try Self.runLimited(tasks: 5, Self.args + ["--irqchip", "none"]))
        #expect(kernel.status == 20)
        #expect(kernel.stderr == "vmm: vCPU 0: KVM_RUN (EAGAIN 100000 times in a row, the guest never entered: is a pids cgroup or RLIMIT_NPROC refusing KVM's per-VM worker task?) failed: Resource temporarily unavailable (errno 11)\n")
        // COM1 on a file starts no thread while the plugins load (it started the UART's
        // output thread there, and the run ended with status 8): the run fails where one
        // without a console does, and a console that keeps up never needs the thread.
        let path = "/tmp/vmm-thread-limit-\(getpid()).txt"
        defer { unlink(path) }
        // (The default plugins: the UART is one, and the debug-exit device ends the run
        // with the guest's code 0, status (0 << 1) | 1.)
        let console = [VMMProcess.guest("hello64.elf"), "--serial", "file:" + path, "--max-seconds", "30"]
        let uart = try #require(try Self.runLimited(tasks: 2, console))
        #expect(uart.status == 20)
        #expect(uart.stderr == signals.stderr)
        let least = try #require(try Self.runLimited(tasks: 7, [VMMProcess.guest("hello64.elf"), "--serial", "none", "--max-seconds", "30"]))
        #expect(least.status == 1, "\(least.stderr)")
        let uartLeast = try #require(try Self.runLimited(tasks: 7, console))
        #expect(uartLeast.status == 1, "\(uartLeast.stderr)")
        #expect(String(decoding: try #require(Self.contents(path)), as: UTF8.self) == "Hello from an ELF64 guest\n")
        // The RTC's interrupt thread starts when the guest first enables an interrupt in
        // register B, the HPET's when it first arms a timer: the vCPU asks the
        // signal-stop thread for it, and the run ends there. Every other task (the worker
        // KVM starts at the first entry too) started before.
        let interrupts: [(guest: String, thread: String, done: Int32)] = [
            ("rtc_irq.elf", "rtc thread (the RTC's interrupts, IRQ 8, which the guest enabled)", (0x19 << 1) | 1),
            ("hpet.elf", "hpet thread (the HPET's interrupts, which the guest armed)", (0x23 << 1) | 1),
        ]
        for (guest, thread, done) in interrupts {
            let args = [VMMProcess.guest(guest), "--serial", "none", "--max-seconds", "30"]
            let refused = try #require(try Self.runLimited(tasks: 7, args))
            #expect(refused.status == 20, "\(guest)")
            #expect(refused.stderr == "vmm: vCPU 0: pthread_create of the \(thread) failed: Resource temporarily unavailable (errno 11)\n")
            let room = try #require(try Self.runLimited(tasks: 8, args))
            #expect(room.status == done, "\(guest): \(room.stderr)")
        }
        // The same guest with room for its threads runs to the end.
        let room = try #require(try Self.runLimited(tasks: 16, Self.args))
        #expect(room.status == 0)
        let roomNoChip = try #require(try Self.runLimited(tasks: 16, Self.args + ["--irqchip", "none"]))
        #expect(roomNoChip.status == 0)
    }
}
