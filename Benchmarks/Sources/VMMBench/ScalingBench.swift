import CPluginBench
import Glibc
import VMMKit

/// Issue 14's scaling benchmark: exits per second with 2 vCPUs against 1, each vCPU on
/// its own port handled by its own instance of the C null plugin (libNull.so), each on
/// its own thread. Two runs: real PIO exits on /dev/kvm (`bench_pio`, both vCPUs in one
/// VM), and the user-space path alone (prepared exits, as in `userpath`). On a machine
/// with 2 cores and nothing else running, no shared lock or cache line on the exit path
/// gives close to 2x; a loaded machine gives less (the other engineers' work takes cores).
enum ScalingBench {
    static func run(exits: Int, synthetic: Int, rounds: Int) throws {
        let kvm = try KVM.open()
        var real1: [Double] = [], real2: [Double] = [], user1: [Double] = [], user2: [Double] = []
        for _ in 0..<rounds {
            real1.append(try realRate(kvm, vcpus: 1, exits: exits))
            real2.append(try realRate(kvm, vcpus: 2, exits: exits))
            user1.append(try userRate(vcpus: 1, exits: synthetic))
            user2.append(try userRate(vcpus: 2, exits: synthetic))
        }
        print("== Scaling: exits per second, 2 vCPUs vs 1, each on its own port through the C null plugin; target >= 1.8x")
        print("path                           1 vCPU/s     2 vCPUs/s    2 vs 1")
        for (name, one, two) in [("real PIO exits (KVM_RUN)", real1, real2), ("user-space path (prepared)", user1, user2)] {
            let (a, b) = (median(one), median(two))
            print(name.padding(31) + fmt(a, 0).padding(13) + fmt(b, 0).padding(13) + fmt(b / a, 2) + "x")
        }
    }

    /// `vcpus` vCPUs of one VM running `bench_pio` (`exits` OUTs each) on ports 0x10, 0x11.
    static func realRate(_ kvm: KVM, vcpus: Int, exits: Int) throws -> Double {
        let vm = try kvm.createVM()
        defer { vm.close() }
        try vm.memory.addRegion(name: "ram", guestAddress: 0, size: 2 << 20)
        try vm.memory.writeBytes(GuestLayout.codeStart, payload("bench_pio"))
        let dispatcher = ExitDispatcher()
        let host = PluginHost(vm: vm, dispatcher: dispatcher, searchPath: PluginBench.searchPath)
        defer { host.close() }
        var list: [VCPU] = []
        for i in 0..<vcpus {
            let vcpu = try vm.createVCPU()
            try vcpu.setupLongMode(entry: GuestLayout.codeStart, stack: 0x80000 - UInt64(i) * 0x10000)
            var regs = try vcpu.registers()
            regs.rcx = UInt64(exits); regs.rdx = 0x10 + UInt64(i); regs.rax = 1
            try vcpu.setRegisters(regs)
            try host.load("Null", config: "port=\(0x10 + i)")
            list.append(vcpu)
        }
        let start = now()
        for vcpu in list { try vcpu.start(dispatcher) }
        for vcpu in list {
            let reason = vcpu.join()
            guard reason == .halted else { throw VMMError.invalidArgument("scaling: vCPU \(vcpu.id) stopped with \(reason)") }
        }
        return Double(exits * vcpus) / (Double(now() - start) / 1e9)
    }

    /// The same through prepared exits: `vcpus` threads, no kernel.
    static func userRate(vcpus: Int, exits: Int) throws -> Double {
        let vm = VirtualMachine.detached()
        defer { vm.close() }
        let dispatcher = ExitDispatcher()
        let host = PluginHost(vm: vm, dispatcher: dispatcher, searchPath: PluginBench.searchPath)
        defer { host.close() }
        var list: [(VCPU, PreparedExitBackend)] = []
        for i in 0..<vcpus {
            let backend = PreparedExitBackend(port: 0x10 + UInt16(i))
            let vcpu = VCPU(id: UInt32(i), backend: backend, memory: vm.memory)
            try vm.adoptReplayVCPU(vcpu)
            try host.load("Null", config: "port=\(0x10 + i)")
            backend.prepare(.pioOut, exits: exits)
            list.append((vcpu, backend))
        }
        // VCPU.start wants a KVM vCPU: run each loop on a thread of our own.
        let runs = list.map { vcpu, _ in LoopThread(vcpu, dispatcher) }
        let start = now()
        runs.forEach { $0.start() }
        for (run, (vcpu, backend)) in zip(runs, list) {
            let reason = run.join()
            guard reason == .shutdown, backend.remaining == 0 else {
                throw VMMError.invalidArgument("scaling: vCPU \(vcpu.id) stopped with \(reason)")
            }
        }
        return Double(exits * vcpus) / (Double(now() - start) / 1e9)
    }
}

/// `VCPU.runLoop` on a pthread of its own.
final class LoopThread: @unchecked Sendable {
    let vcpu: VCPU
    let dispatcher: ExitDispatcher
    var reason: StopReason = .requested
    private var thread = pthread_t()

    init(_ vcpu: VCPU, _ dispatcher: ExitDispatcher) { self.vcpu = vcpu; self.dispatcher = dispatcher }

    func start() {
        let me = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(&thread, nil, { raw in
            let me = Unmanaged<LoopThread>.fromOpaque(raw!).takeRetainedValue()
            me.reason = me.vcpu.runLoop(me.dispatcher)
            return nil
        }, me)
        precondition(rc == 0, "pthread_create failed")
    }

    func join() -> StopReason {
        pthread_join(thread, nil)
        return reason
    }
}
