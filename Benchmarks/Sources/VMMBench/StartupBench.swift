import CPluginBench
import Glibc
import VMMKit

/// Issue 14's start-up and footprint benchmark: the release `vmm run` of a trivial
/// guest (hello64.elf: a line on COM1, then debug-exit) against a bare Swift process
/// (`SwiftNoop`, an empty main), alternating, `runs` times each. Start-up is split
/// with the launcher's `VMM_STARTUP_TRACE` milestones (CLOCK_MONOTONIC, comparable with
/// the time noted here before the spawn); peak RSS comes from wait4's rusage. Beside
/// them, in the same rounds, the kernel's own destroy of a VM like the launcher's, from
/// C, with and without the PIT: what of the teardown is the kernel's.
enum StartupBench {
    struct Sample {
        var total = 0.0, preMain = 0.0, parse = 0.0, toKVM = 0.0, vmSetup = 0.0, plugins = 0.0, guest = 0.0, exit = 0.0
        var peakKiB = 0
    }

    static func run(runs: Int) throws {
        let root = PluginSearchPath.packageRoot ?? "."
        let vmm = root + "/.build/release/vmm"
        let guest = root + "/.build/guests/hello64.elf"
        let noop = root + "/Benchmarks/.build/release/SwiftNoop"
        for file in [vmm, guest, noop] where access(file, X_OK | R_OK) != 0 && access(file, R_OK) != 0 {
            throw VMMError.invalidArgument("startup: \(file) is missing (scripts/bench builds it)")
        }
        var vmmSamples: [Sample] = [], bare: [Sample] = [], destroyWithPIT: [Double] = [], destroyNoPIT: [Double] = []
        for _ in 0..<runs {
            vmmSamples.append(try spawn([vmm, "run", guest], trace: true))
            bare.append(try spawn([noop], trace: false))
            destroyWithPIT.append(try destroyTime(withPIT: true))
            destroyNoPIT.append(try destroyTime(withPIT: false))
        }
        func m(_ key: KeyPath<Sample, Double>, _ s: [Sample]) -> Double { median(s.map { $0[keyPath: key] }) / 1e6 }
        let bareTotal = m(\.total, bare)
        print("== Start-up of release `vmm run` (trivial ELF guest) vs a bare Swift process, median of \(runs)")
        print("phase                          ms")
        let rows: [(String, KeyPath<Sample, Double>)] = [
            ("before main (dynamic loading)", \.preMain), ("argument parsing", \.parse), ("options and KVM.open()", \.toKVM),
            ("VM, image and vCPU setup", \.vmSetup), ("plugin loads and inits", \.plugins),
            ("guest run", \.guest), ("teardown and exit", \.exit),
        ]
        for (name, key) in rows { print(name.padding(31) + fmt(m(key, vmmSamples), 2)) }
        let total = m(\.total, vmmSamples)
        print("vmm run total".padding(31) + fmt(total, 2))
        print("bare Swift process".padding(31) + fmt(bareTotal, 2) + "   vmm / bare: \(fmt(total / bareTotal, 2))x")
        // The teardown is the kernel's destroy of the VM (SRCU grace periods, from about
        // 0.3 to 25 ms a VM on this host): the same VM destroyed from C shows it.
        print("the kernel's destroy of such a VM (C, same rounds): irqchip, PIT and a vCPU \(fmt(median(destroyWithPIT) / 1e6, 2)) ms,"
              + " without the PIT \(fmt(median(destroyNoPIT) / 1e6, 2)) ms")
        let untilGuestEnd = median(vmmSamples.map { $0.total - $0.exit }) / 1e6
        print("vmm run up to the guest's end".padding(31) + fmt(untilGuestEnd, 2) + "   vmm / bare: \(fmt(untilGuestEnd / bareTotal, 2))x")
        let vmmPeak = Double(median(vmmSamples.map { Double($0.peakKiB) })) / 1024
        let barePeak = Double(median(bare.map { Double($0.peakKiB) })) / 1024
        print("== Peak RSS (wait4 ru_maxrss), median of \(runs): vmm run \(fmt(vmmPeak, 1)) MiB, bare Swift \(fmt(barePeak, 1)) MiB,"
              + " difference \(fmt(vmmPeak - barePeak, 1)) MiB (guest RAM it touches: a few pages)")
    }

    /// Nanoseconds the kernel takes to destroy a VM made in C (`vm_teardown_prepare`),
    /// from the close of its last fd.
    static func destroyTime(withPIT: Bool) throws -> Double {
        let vm = vm_teardown_prepare(withPIT ? 1 : 0)
        guard vm >= 0 else { throw VMMError.invalidArgument("startup: the C teardown baseline could not make its VM (errno \(errno))") }
        let start = now()
        close(vm)
        return Double(now() - start)
    }

    /// Spawns `argv` with stdout to /dev/null and stderr to a pipe; returns its times.
    static func spawn(_ argv: [String], trace: Bool) throws -> Sample {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw VMMError.invalidArgument("startup: pipe failed") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 2)
        posix_spawn_file_actions_addclose(&actions, fds[0])
        var env = ["PATH=/usr/bin:/bin"]
        if trace { env.append("VMM_STARTUP_TRACE=1") }
        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv = env.map { strdup($0) } + [nil]
        defer { cArgs.forEach { free($0) }; cEnv.forEach { free($0) } }
        var pid = pid_t()
        let start = now()
        let rc = posix_spawn(&pid, argv[0], &actions, nil, cArgs, cEnv)
        close(fds[1])
        guard rc == 0 else { close(fds[0]); throw VMMError.invalidArgument("startup: cannot spawn \(argv[0]) (errno \(rc))") }
        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fds[0], &buffer, buffer.count)
            if n <= 0 { break }
            output += buffer[0..<n]
        }
        close(fds[0])
        var status: Int32 = 0
        var usage = rusage()
        _ = wait4(pid, &status, 0, &usage)
        let end = now()
        var s = Sample()
        s.total = Double(end - start)
        s.peakKiB = usage.ru_maxrss
        guard trace else { return s }
        let text = String(decoding: output, as: UTF8.self)
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("vmm-startup:") }) else {
            throw VMMError.invalidArgument("startup: vmm printed no start-up trace (status \(status)): \(text)")
        }
        var t: [String: UInt64] = [:]
        for field in line.dropFirst("vmm-startup:".count).split(separator: " ") {
            let kv = field.split(separator: "=")
            if kv.count == 2, let v = UInt64(kv[1]) { t[String(kv[0])] = v }
        }
        guard let main = t["main"], let parsed = t["parsed"], let kvm = t["kvm"], let vm = t["vm"], let plugins = t["plugins"], let guest = t["guest"],
              start <= main, main <= parsed, parsed <= kvm, kvm <= vm, vm <= plugins, plugins <= guest, guest <= end else {
            throw VMMError.invalidArgument("startup: unexpected trace '\(line)'")
        }
        s.preMain = Double(main - start)
        s.parse = Double(parsed - main)
        s.toKVM = Double(kvm - parsed)
        s.vmSetup = Double(vm - kvm)
        s.plugins = Double(plugins - vm)
        s.guest = Double(guest - plugins)
        s.exit = Double(end - guest)
        return s
    }
}
