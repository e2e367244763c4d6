import CKVMTestSupport
import CPluginBench
import CVMMPlugin
import Glibc
import VMMKit

/// The scaling benchmark's real-exit runs: a fresh VM each run (its set-up is not
/// timed), `bench_pio` on each vCPU, vCPU i writing `exits` times to port 0x10 + i.
enum RealRunner {
    static func rate(_ kvm: KVM, _ loop: ScalingBench.Loop, vcpus: Int, exits: Int) throws -> ScalingBench.Rate {
        let vm = try kvm.createVM()
        defer { vm.close() }
        try vm.memory.addRegion(name: "ram", guestAddress: 0, size: 2 << 20)
        try vm.memory.writeBytes(GuestLayout.codeStart, payload("bench_pio"))
        var list: [VCPU] = []
        for i in 0..<vcpus {
            let vcpu = try vm.createVCPU()
            try vcpu.setupLongMode(entry: GuestLayout.codeStart, stack: 0x80000 - UInt64(i) * 0x10000)
            var regs = try vcpu.registers()
            regs.rcx = UInt64(exits); regs.rdx = 0x10 + UInt64(i); regs.rax = 1
            try vcpu.setRegisters(regs)
            list.append(vcpu)
        }
        return loop == .c ? try c(list, exits) : try vmmkit(vm, list, exits)
    }

    static func c(_ list: [VCPU], _ exits: Int) throws -> ScalingBench.Rate {
        let results = UnsafeMutablePointer<ckvm_raw_result>.allocate(capacity: list.count)
        defer { results.deallocate() }
        let rate = ScalingBench.timed(exits, list.enumerated().map { i, vcpu in
            { results[i] = ckvm_raw_run_loop(vcpu.fd, vcpu.unsafeRunPage) }
        })
        for i in list.indices where results[i].err != 0 || results[i].exits != UInt64(exits) || results[i].last_exit != 5 {
            throw VMMError.invalidArgument("scaling: the C loop on vCPU \(i) went wrong: \(results[i])")
        }
        return rate
    }

    static func vmmkit(_ vm: VirtualMachine, _ list: [VCPU], _ exits: Int) throws -> ScalingBench.Rate {
        let dispatcher = ExitDispatcher()
        let host = PluginHost(vm: vm, dispatcher: dispatcher, searchPath: PluginBench.searchPath)
        defer { host.close() }
        for i in list.indices { try host.load("Null", config: "port=\(0x10 + i)") }
        return try loops(list.map { ($0, dispatcher) }, exits) { _, reason in reason == .halted }
    }

    /// Each vCPU's `runLoop` (the loop `VCPU.start` runs) on a thread of the benchmark's
    /// own, all at once (`ScalingBench.timed`); throws unless `ended` accepts each stop
    /// (the vCPU's index in `list`, its stop reason).
    static func loops(_ list: [(VCPU, ExitDispatcher)], _ exits: Int,
                      ended: (Int, StopReason) -> Bool) throws -> ScalingBench.Rate {
        let reasons = UnsafeMutablePointer<StopReason>.allocate(capacity: list.count)
        reasons.initialize(repeating: .requested, count: list.count)
        defer { reasons.deinitialize(count: list.count); reasons.deallocate() }
        let rate = ScalingBench.timed(exits, list.enumerated().map { i, loop in { reasons[i] = loop.0.runLoop(loop.1) } })
        for (i, (vcpu, _)) in list.enumerated() where !ended(i, reasons[i]) {
            throw VMMError.invalidArgument("scaling: vCPU \(vcpu.id) stopped with \(reasons[i])")
        }
        return rate
    }
}

/// The scaling benchmark's user-space runs (prepared exits, no kernel), set up once and
/// run again each round: the C loop's buffers for two threads, and VMMKit's machines
/// for one vCPU, two vCPUs in one VM, and two VMs of one vCPU each.
final class UserRunners {
    /// A detached VM, its dispatcher and plugin host, and its vCPUs (`Null` on 0x10 + i).
    struct Machine {
        let vm = VirtualMachine.detached()
        let dispatcher = ExitDispatcher()
        let host: PluginHost
        var vcpus: [(VCPU, PreparedExitBackend)] = []

        init(ports: Range<Int>) throws {
            host = PluginHost(vm: vm, dispatcher: dispatcher, searchPath: PluginBench.searchPath)
            for port in ports {
                let backend = PreparedExitBackend(port: 0x10 + UInt16(port))
                let vcpu = VCPU(id: UInt32(vcpus.count), backend: backend, memory: vm.memory)
                try vm.adoptReplayVCPU(vcpu)
                try host.load("Null", config: "port=\(0x10 + port)")
                vcpus.append((vcpu, backend))
            }
        }
        func close() { host.close(); vm.close() }
    }

    let exits: Int
    let one: Machine, two: Machine, each: [Machine]
    /// Each C thread's run page, record and scratch on pages of its own (no shared line).
    let pages: [UnsafeMutableRawPointer]

    init(exits: Int) throws {
        self.exits = exits
        one = try Machine(ports: 0..<1)
        two = try Machine(ports: 0..<2)
        each = [try Machine(ports: 0..<1), try Machine(ports: 1..<2)]
        pages = (0..<2).map { _ in UnsafeMutableRawPointer.allocate(byteCount: 3 * Int(PreparedExitBackend.size), alignment: 4096) }
    }

    func close() { ([one, two] + each).forEach { $0.close() }; pages.forEach { $0.deallocate() } }

    func rate(_ loop: ScalingBench.Loop, vcpus: Int) throws -> ScalingBench.Rate {
        switch loop {
        case .c: return c(threads: vcpus)
        case .vmmkit: return try run(vcpus == 1 ? one.vcpus.map { ($0, one.dispatcher) } : two.vcpus.map { ($0, two.dispatcher) })
        case .vmEach: return try run(each.prefix(vcpus).map { ($0.vcpus[0], $0.dispatcher) })
        }
    }

    func c(threads: Int) -> ScalingBench.Rate {
        let shape = Int32(USER_PATH_PIO_OUT), reason = user_path_reason(shape), size = Int(PreparedExitBackend.size)
        let handled = UnsafeMutablePointer<UInt64>.allocate(capacity: threads)
        defer { handled.deallocate() }
        let records = (0..<threads).map { (pages[$0] + size).bindMemory(to: vmm_exit_t.self, capacity: 1) }
        for i in 0..<threads {
            records[i].initialize(to: vmm_exit_t())
            user_path_prepare(pages[i], shape, 0x10 + UInt16(i), UserPathBench.mmio)
        }
        let rate = ScalingBench.timed(exits, (0..<threads).map { i in {
            handled[i] = user_path_c_loop(self.pages[i], reason, UInt64(self.exits), 0x10 + UInt16(i), UserPathBench.mmio,
                                          records[i], (self.pages[i] + 2 * size).assumingMemoryBound(to: UInt8.self))
        } })
        for i in 0..<threads { precondition(handled[i] == UInt64(exits), "scaling: the C loop refused the record") }
        return rate
    }

    func run(_ list: [((VCPU, PreparedExitBackend), ExitDispatcher)]) throws -> ScalingBench.Rate {
        list.forEach { $0.0.1.prepare(.pioOut, exits: exits) }
        // Each run ends in the backend's triple fault, after its last prepared exit.
        return try RealRunner.loops(list.map { ($0.0.0, $0.1) }, exits) { i, reason in
            reason == .shutdown && list[i].0.1.remaining == 0
        }
    }
}
