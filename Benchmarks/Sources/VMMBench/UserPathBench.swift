import CPluginBench
import CVMMPlugin
import Glibc
import VMMKit

/// Issue 14's benchmark: what one exit costs in user space, without the kernel.
///
/// On this host a `KVM_RUN` round trip costs ~11 µs (ring 0 is emulated), which hides
/// everything user space does; on VMX/SVM hardware a PIO exit is ~1 µs and the part
/// measured here decides the ratio. A `PreparedExitBackend` stands in for the kernel:
/// the exit record is prepared once and each entry only writes `exit_reason` (the one
/// field the canary's poison may have overwritten), so nothing is copied per exit.
/// Everything above `enter()` is the real loop: pending check, canary poison and
/// classify, decode, history (which also breaks a run of repeated faults), frozen-table
/// dispatch to the handler, completion. Beside it, in the same run, a C loop does the same decode,
/// range check, plugin-record fill, indirect handler call and completion
/// (`user_path_c_loop`). Each kind's run follows a C run of its own, and the ratio printed
/// is the median of those pairs', so drift on a shared machine (clock, neighbours) hits
/// both sides of a ratio alike.
enum UserPathBench {
    static let port: UInt16 = 0x10
    static let mmio: UInt64 = 0xd000_0000

    enum Shape: Int32, CaseIterable {
        case pioOut, pioIn, mmioRead, mmioWrite, hlt
        var name: String { ["PIO out", "PIO in", "MMIO read", "MMIO write", "HLT"][Int(rawValue)] }
        // The C enum's values are the same (cplugin_bench.h).
        var cShape: Int32 { rawValue }
    }

    enum Kind: String, CaseIterable {
        case closure = "Swift closure", cPlugin = "C plugin", swiftPlugin = "Swift plugin"
        /// The Swift plugin's handlers as `@c` functions (`PluginServices.registerFunction`).
        case swiftDirect = "Swift @c"
    }

    static func run(exits n: Int, rounds: Int) throws {
        let onlyShape = getenv("VMM_USERPATH_SHAPE").map { String(cString: $0) }
        let onlyKind = getenv("VMM_USERPATH_HANDLER").map { String(cString: $0) }
        let shapes = Shape.allCases.filter { onlyShape == nil || $0.name == onlyShape }
        let kinds = Kind.allCases.filter { onlyKind == nil || $0.rawValue == onlyKind }

        let page = UnsafeMutableRawPointer.allocate(byteCount: Int(PreparedExitBackend.size), alignment: 4096)
        let scratch = UnsafeMutablePointer<UInt8>.allocate(capacity: Int(PreparedExitBackend.size))
        let record = UnsafeMutablePointer<vmm_exit_t>.allocate(capacity: 1)
        record.initialize(to: vmm_exit_t())
        defer { page.deallocate(); scratch.deallocate(); record.deallocate() }

        let benches = try kinds.map { try Setup($0) }
        defer { benches.forEach { $0.close() } }

        // Paired runs: each handler kind's run right after a C run of its own, so that
        // the ratio compares two runs under the same conditions (clock, a neighbour on
        // the other hyperthread). ratios[shape][kind] holds one C-to-kind ratio a pair.
        var cTimes = [[Double]](repeating: [], count: shapes.count)
        var kindTimes = [[[Double]]](repeating: [[Double]](repeating: [], count: kinds.count), count: shapes.count)
        var ratios = kindTimes
        for _ in 0..<rounds {
            for (s, shape) in shapes.enumerated() {
                user_path_prepare(page, shape.cShape, port, mmio)
                let reason = user_path_reason(shape.cShape)
                // With no kind selected (VMM_USERPATH_HANDLER=none), the C loop alone.
                for k in 0..<max(benches.count, 1) {
                    var start = threadCPUNow()
                    let handled = user_path_c_loop(page, reason, UInt64(n), port, mmio, record, scratch)
                    let c = Double(threadCPUNow() - start) / Double(n)
                    precondition(handled == UInt64(n), "C loop refused the \(shape.name) record")
                    cTimes[s].append(c)
                    guard k < benches.count else { continue }
                    start = threadCPUNow()
                    try benches[k].run(shape, n)
                    let t = Double(threadCPUNow() - start) / Double(n)
                    kindTimes[s][k].append(t)
                    ratios[s][k].append(t / c)
                }
            }
        }

        print("== User-space path of one exit (no kernel: prepared exits), \(n) per round, \(rounds) rounds")
        print("   through VCPU.runLoop (canary, decode, history, dispatch, completion) vs a C loop doing the same;")
        print("   thread CPU time (preemption by other load is not counted); medians; xC is the median of the")
        print("   ratios of paired runs (each kind's run right after a C run)")
        print("   targets: <= 60 ns Swift closure, <= 75 ns plugin, <= 3x C")
        var header = "shape".padding(12) + "C ns".padding(8)
        for kind in kinds { header += (kind.rawValue + " ns (xC)").padding(24) }
        print(header)
        for (s, shape) in shapes.enumerated() {
            var line = shape.name.padding(12) + fmt(median(cTimes[s])).padding(8)
            for k in kinds.indices {
                line += "\(fmt(median(kindTimes[s][k]))) (\(fmt(median(ratios[s][k]), 2))x)".padding(24)
            }
            print(line)
        }
    }

    /// One handler kind, wired for all shapes on its own detached VM and vCPU.
    final class Setup {
        let vm = VirtualMachine.detached()
        let backend = PreparedExitBackend()
        let vcpu: VCPU
        let dispatcher = ExitDispatcher()
        let host: PluginHost
        let kind: Kind
        let counter = Counter()

        final class Counter { var writes = 0, hlts = 0 }

        init(_ kind: Kind) throws {
            self.kind = kind
            vcpu = VCPU(id: 0, backend: backend, memory: vm.memory)
            try vm.adoptReplayVCPU(vcpu)
            host = PluginHost(vm: vm, dispatcher: dispatcher, searchPath: PluginBench.searchPath)
            let config = "port=\(port),mmio=\(mmio),hlt=1"
            switch kind {
            case .closure:
                let counter = counter
                try dispatcher.registerPIO(port: port, owner: "bench") { io, _ in
                    if io.isWrite { counter.writes &+= 1 } else { io.data.initializeMemory(as: UInt8.self, repeating: 0) }
                    return .handled
                }
                try dispatcher.registerMMIO(address: mmio, length: 4096, owner: "bench") { access, _ in
                    if access.isWrite { counter.writes &+= 1 } else { access.data = 0 }
                    return .handled
                }
                try dispatcher.register(.hlt, owner: "bench") { _, _ in
                    counter.hlts &+= 1
                    return .handled
                }
            case .cPlugin: try host.load("Null", config: config)
            case .swiftPlugin: try host.load("NullSwift", config: config)
            case .swiftDirect: try host.load("NullSwift", config: config + ",direct=1")
            }
        }

        func run(_ shape: Shape, _ n: Int) throws {
            backend.prepare(shape, exits: n)
            vcpu.canary.reset()
            let reason = vcpu.runLoop(dispatcher)
            guard reason == .shutdown, backend.remaining == 0 else {
                throw VMMError.invalidArgument("\(kind.rawValue), \(shape.name): the loop stopped with \(reason) after \(n - backend.remaining) exits")
            }
        }

        func close() { host.close(); vm.close() }
    }
}

/// The benchmark's "kernel": each entry writes `exit_reason` of a record prepared once
/// (the first entry of a run writes the whole record, in case the canary poisoned it),
/// and after the last exit a triple fault, which stops the loop as `.shutdown`. It is C
/// (`user_path_kernel_enter`), entered as the core enters `KVM_RUN`: through the
/// backend's `entryFunction`, one call through a pointer, as the C loop calls its own
/// stand-in, so the loop measured is the one a KVM vCPU runs.
final class PreparedExitBackend: VCPUBackend, @unchecked Sendable {
    static let size: Int32 = 3 * 4096
    let runBuffer = UnsafeMutableRawPointer.allocate(byteCount: Int(size), alignment: 4096)
    var runBufferSize: Int { Int(Self.size) }
    var fd: Int32 { -1 }
    /// The C kernel's state, on cache lines of its own (two backends' counters side by
    /// side would share one: ScalingBench).
    private let kernel: UnsafeMutablePointer<user_path_kernel_t>
    var remaining: Int { Int(kernel.pointee.left) &+ Int(kernel.pointee.unstarted) }

    init(port: UInt16 = UserPathBench.port) {
        runBuffer.initializeMemory(as: UInt8.self, repeating: 0, count: Int(Self.size))
        kernel = UnsafeMutableRawPointer.allocate(byteCount: 128, alignment: 128).bindMemory(to: user_path_kernel_t.self, capacity: 1)
        kernel.initialize(to: user_path_kernel_t(left: 0, unstarted: 0, run: runBuffer, mmio: UserPathBench.mmio,
                                                 reason: 0, shape: UserPathBench.Shape.hlt.cShape, port: port))
    }
    deinit { runBuffer.deallocate(); kernel.deallocate() }

    func prepare(_ shape: UserPathBench.Shape, exits: Int) {
        kernel.pointee.shape = shape.cShape
        kernel.pointee.reason = user_path_reason(shape.cShape)
        kernel.pointee.left = 0
        kernel.pointee.unstarted = UInt64(exits)
    }

    var entryFunction: VCPUEntryFunction? { VCPUEntryFunction(user_path_kernel_enter, context: UnsafeMutableRawPointer(kernel)) }

    func enter() -> (rc: Int32, errno: Int32) { (user_path_kernel_enter(kernel), 0) }

    func registers() throws(VMMError) -> Registers { Registers() }
    func setRegisters(_ regs: Registers) throws(VMMError) {}
    func translate(_ virtualAddress: UInt64) throws(VMMError) -> UInt64? { nil }
    func close() {}
}
