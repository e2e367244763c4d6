import CKVMTestSupport
import CPluginBench
import CVMMPlugin
import Glibc
import VMMKit

/// Issue 3's benchmark: the cost of reaching a handler in a dlopen'd plugin.
/// 1. Synthetic exits (no kernel): an IN of one byte at port 0x10 fed straight to
///    `ExitDispatcher.dispatch`, handled by a direct C call (the floor), an in-process
///    Swift closure, the C null plugin (libNull.so), its Swift twin (NullSwift, this
///    package) and the Swift ScratchDevice plugin (a real device: a lock per access).
/// 2. Real PIO exits (`bench_pio`: N `out` exits): the raw C loop vs the Swift run loop
///    with each handler. Rounds alternate so drift on a shared machine hits all alike.
enum PluginBench {
    static let port: UInt16 = 0x10

    static func run(exits: Int, rounds: Int) throws {
        let kvm = try KVM.open()
        let synthetic = Int(getenv("VMM_BENCH_SYNTHETIC").flatMap { Int(String(cString: $0)) } ?? 2_000_000)
        try runSynthetic(kvm, n: synthetic, rounds: rounds)
        try runReal(kvm, exits: exits, rounds: rounds)
    }

    /// Where the plugins are: scripts/bench builds them (release Swift, cc for C).
    static var searchPath: PluginSearchPath {
        let root = PluginSearchPath.packageRoot ?? "."
        // VMM_BENCH_PLUGIN_DIR first: scripts/bench-instructions loads copies without
        // debug information from there (valgrind cannot read the Swift compiler's).
        let first = getenv("VMM_BENCH_PLUGIN_DIR").map { [String(cString: $0)] } ?? []
        return PluginSearchPath(first + [root + "/Benchmarks/.build/release", root + "/.build/release",
                                         root + "/.build/plugins/fixtures", root + "/.build/debug"])
    }

    enum Handler: String, CaseIterable {
        case swiftClosure = "Swift closure", cPlugin = "C plugin (dlopen)", swiftPlugin = "Swift null plugin (dlopen)"
        case swiftDevice = "Swift ScratchDevice (dlopen)"
    }

    /// A dispatcher (and its plugin host, kept alive by the caller) with one handler on `port`.
    static func dispatcher(_ handler: Handler, vm: VirtualMachine) throws -> (ExitDispatcher, PluginHost) {
        let d = ExitDispatcher()
        let host = PluginHost(vm: vm, dispatcher: d, searchPath: searchPath)
        switch handler {
        case .swiftClosure:
            var writes = 0
            try d.registerPIO(port: port, owner: "bench") { io, _ in
                if io.isWrite { writes &+= 1 } else { io.data.initializeMemory(as: UInt8.self, repeating: 0) }
                return .handled
            }
        case .cPlugin: try host.load("Null", config: "port=\(port)")
        case .swiftPlugin: try host.load("NullSwift", config: "port=\(port)")
        case .swiftDevice: try host.load("ScratchDevice", config: "port=\(port),mmio=0")
        }
        return (d, host)
    }

    static func runSynthetic(_ kvm: KVM, n: Int, rounds: Int) throws {
        let (vm, vcpu) = try makeGuest(kvm, "hlt") { _ in }
        defer { vm.close() }
        let data = UnsafeMutableRawBufferPointer.allocate(byteCount: 8, alignment: 8)
        let record = UnsafeMutablePointer<vmm_exit_t>.allocate(capacity: 1)
        defer { data.deallocate(); record.deallocate() }
        record.initialize(to: vmm_exit_t())
        let setups = try Handler.allCases.map { try dispatcher($0, vm: vm) }
        // As a vCPU loop does before its first exit: dispatch then reads the frozen tables.
        setups.forEach { $0.0.freeze() }
        var times = [[Double]](repeating: [], count: 1 + setups.count)
        for _ in 0..<rounds {
            var start = now()
            precondition(cplugin_bench_direct(UInt64(n), record, data.baseAddress!.assumingMemoryBound(to: UInt8.self)) == n)
            times[0].append(Double(now() - start) / Double(n))
            for (i, (d, _)) in setups.enumerated() {
                var exit = VMExit.io(.synthetic(port: port, size: 1, isWrite: false, data: UnsafeMutableRawBufferPointer(rebasing: data[0..<1])))
                start = now()
                for _ in 0..<n {
                    guard case .handled = d.dispatch(&exit, on: vcpu) else { fatalError("not handled") }
                }
                times[i + 1].append(Double(now() - start) / Double(n))
            }
        }
        let m = times.map(median)
        print("== Plugin dispatch, synthetic IN exits (no kernel), \(n) per round, \(rounds) rounds; target <= 50 ns")
        print("handler                         ns/exit   vs direct C   vs Swift closure")
        let names = ["direct C call (no dispatcher)"] + Handler.allCases.map { "dispatcher -> " + $0.rawValue }
        for (i, name) in names.enumerated() {
            print("\(name.padding(32))\(fmt(m[i]).padding(10))\(fmt(m[i] / m[0], 2).padding(14))\(fmt(m[i] / m[1], 2))")
        }
        setups.forEach { $0.1.close() }
    }

    static func runReal(_ kvm: KVM, exits: Int, rounds: Int) throws {
        let setup: (inout Registers) -> Void = { regs in
            regs.rcx = UInt64(exits); regs.rdx = UInt64(port); regs.rax = 1
        }
        var c: [Double] = []
        var byHandler = [[Double]](repeating: [], count: Handler.allCases.count)
        for _ in 0..<rounds {
            do {
                let (vm, vcpu) = try makeGuest(kvm, "bench_pio", setup: setup)
                defer { vm.close() }
                let start = now()
                let r = ckvm_raw_run_loop(vcpu.fd, vcpu.unsafeRunPage)
                precondition(r.err == 0 && r.exits == UInt64(exits), "C loop went wrong: \(r)")
                c.append(Double(now() - start) / Double(exits))
            }
            for (i, handler) in Handler.allCases.enumerated() {
                let (vm, vcpu) = try makeGuest(kvm, "bench_pio", setup: setup)
                defer { vm.close() }
                let (d, host) = try dispatcher(handler, vm: vm)
                defer { host.close() }
                let start = now()
                let reason = vcpu.runLoop(d)
                precondition(reason == .halted, "\(handler.rawValue) loop went wrong: \(reason)")
                byHandler[i].append(Double(now() - start) / Double(exits))
            }
        }
        let cm = median(c)
        print("== Plugin dispatch on real PIO exits, \(exits) per round, \(rounds) rounds; target within 2 % of raw C")
        print("loop                            ns/exit   vs raw C")
        print("\("raw C loop".padding(32))\(fmt(cm).padding(10))1.000")
        for (i, handler) in Handler.allCases.enumerated() {
            let hm = median(byHandler[i])
            print("\(("Swift loop -> " + handler.rawValue).padding(32))\(fmt(hm).padding(10))\(fmt(hm / cm, 3))")
        }
    }
}
