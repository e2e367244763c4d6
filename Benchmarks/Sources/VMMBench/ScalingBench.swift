import Glibc
import VMMKit

/// Issue 14's scaling benchmark: exits per second with 2 vCPUs against 1, each vCPU on
/// its own port and its own thread. Two paths: real PIO exits on /dev/kvm (`bench_pio`,
/// both vCPUs in one VM) and the user-space path alone (prepared exits, as in
/// `userpath`). Each path runs through VMMKit (the C null plugin, one instance per port)
/// and through a plain C loop on the same number of threads (`ckvm_raw_run_loop`,
/// `user_path_c_loop`), which shares nothing between its threads: the C loop's 2-vs-1
/// is what this machine gives two threads of that work at that moment, and VMMKit's
/// against it is what VMMKit keeps of it. The user-space path also runs with each vCPU
/// in a VM, dispatcher and plugin host of its own ("VM each"): VMMKit sharing nothing.
///
/// This host's capacity drifts (other tenants, the hypervisor): a run of two threads
/// now and then gets well under two cores' worth. So the runs are short (tens of ms),
/// each 2-vCPU run is paired with the 1-vCPU run next to it, the pair's order flips
/// every round, and the figure is the median of many pairs' ratios.
enum ScalingBench {
    struct Rate { var perSecond: Double }
    enum Loop: Int, CaseIterable { case c, vmmkit, vmEach }
    enum Path: Int, CaseIterable { case real, user }
    static let target = 1.8

    static func run(exits: Int, synthetic: Int, rounds: Int) throws {
        let kvm = try KVM.open()
        let user = try UserRunners(exits: synthetic)
        defer { user.close() }
        let loops: [Path: [Loop]] = [.real: [.c, .vmmkit], .user: [.c, .vmmkit, .vmEach]]
        // VMM_SCALING_PATH=real or user: that path alone.
        let only = getenv("VMM_SCALING_PATH").map { String(cString: $0) }
        let paths = Path.allCases.filter { only == nil || only == ($0 == .real ? "real" : "user") }
        // rates[path][loop][vcpus - 1][round]
        var rates = [[[[Rate]]]](repeating: [[[Rate]]](repeating: [[], []], count: 3), count: 2)
        var order: [(Path, Loop, Int)] = []
        for path in paths { for loop in loops[path]! { order += [(path, loop, 1), (path, loop, 2)] } }
        for round in 0..<rounds {
            for (path, loop, vcpus) in round % 2 == 0 ? order : order.reversed() {
                let rate = switch path {
                case .real: try RealRunner.rate(kvm, loop, vcpus: vcpus, exits: exits)
                case .user: try user.rate(loop, vcpus: vcpus)
                }
                rates[path.rawValue][loop.rawValue][vcpus - 1].append(rate)
            }
        }
        print("== Scaling: exits per second, 2 vCPUs vs 1, each on its own port and thread; target VMMKit >= \(fmt(target, 1))x")
        print("   VMMKit: through the C null plugin. C: a plain C loop doing the same exits on the same threads,")
        print("   sharing nothing: what this machine gave two threads of that work in this run. VM each: VMMKit with")
        print("   each vCPU in a VM, dispatcher and plugin host of its own. \(rounds) rounds of short runs, each")
        print("   2-vCPU run paired with a 1-vCPU run next to it; 2 vs 1 = the median of the pairs' ratios, with how")
        print("   many pairs reached \(fmt(target, 1))x. A run's exits per second: the sum of its threads' own rates.")
        print("path                         loop     1 vCPU/s     2 vCPUs/s    2 vs 1   pairs >= \(fmt(target, 1))")
        for path in paths {
            var scaling = [[Double]](repeating: [], count: 3)
            for loop in loops[path]! {
                let one = rates[path.rawValue][loop.rawValue][0], two = rates[path.rawValue][loop.rawValue][1]
                let ratios = zip(one, two).map { $1.perSecond / $0.perSecond }
                scaling[loop.rawValue] = ratios
                let name = loop == .c ? (path == .real ? "real PIO exits (KVM_RUN)" : "user-space path (prepared)") : ""
                print(name.padding(29) + ["C", "VMMKit", "VM each"][loop.rawValue].padding(9)
                      + fmt(median(one.map(\.perSecond)), 0).padding(13) + fmt(median(two.map(\.perSecond)), 0).padding(13)
                      + (fmt(median(ratios), 2) + "x").padding(9)
                      + "\(ratios.filter { $0 >= target }.count)/\(ratios.count)")
            }
            let (c, v) = (median(scaling[0]), median(scaling[1]))
            let share = median(zip(scaling[0], scaling[1]).map { $1 / $0 })
            let verdict = v >= target ? "met" : c < target ? "not shown: the C loop itself reached \(fmt(c, 2))x" : "NOT MET"
            print("   \(path == .real ? "real exits" : "user-space path"): VMMKit \(fmt(v, 2))x, the C loop \(fmt(c, 2))x "
                  + "(VMMKit's over C's, median of the rounds: \(fmt(share, 2))); target: \(verdict)")
        }
    }

    /// Runs each body on a pthread of its own, all at once, each doing `exits` exits.
    /// The rate is the sum of the threads' own rates (each from its own start to its
    /// own end): the run's end, where one thread has finished and the other still runs
    /// alone, would otherwise count as a 2-vCPU run.
    static func timed(_ exits: Int, _ bodies: [() -> Void]) -> Rate {
        final class Body {
            let run: () -> Void, wall: UnsafeMutablePointer<UInt64>
            init(_ run: @escaping () -> Void, _ wall: UnsafeMutablePointer<UInt64>) { self.run = run; self.wall = wall }
        }
        let walls = UnsafeMutablePointer<UInt64>.allocate(capacity: bodies.count)
        walls.initialize(repeating: 0, count: bodies.count)
        defer { walls.deallocate() }
        var threads = [pthread_t](repeating: pthread_t(), count: bodies.count)
        for (i, body) in bodies.enumerated() {
            let rc = pthread_create(&threads[i], nil, { raw in
                let body = Unmanaged<Body>.fromOpaque(raw!).takeRetainedValue()
                let start = now()
                body.run()
                body.wall.pointee = now() - start
                return nil
            }, Unmanaged.passRetained(Body(body, walls + i)).toOpaque())
            precondition(rc == 0, "pthread_create failed")
        }
        threads.forEach { pthread_join($0, nil) }
        return Rate(perSecond: UnsafeBufferPointer(start: walls, count: bodies.count)
            .reduce(0) { $0 + Double(exits) / (Double($1) / 1e9) })
    }
}
