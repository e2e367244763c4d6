import Glibc
import VMMAsyncPF
import VMMKit
import VMMPaging

/// Async page faults vs a synchronous stall, on the two-task guest kernel
/// (Examples/Guests/async_pf_kernel.S): task A reads N pages that arrive `latency` after
/// they are asked for; task B has a fixed amount of work. With async PF the guest runs
/// B while A's pages are missing; without it (CPUID bits withdrawn, so the guest never
/// enables it) the vCPU stalls on each page and B's work only starts after A's.
///
/// Reported: B's work done while A's pages were missing (per page wait), and the wall
/// time for the whole workload (A's N pages + B's work) in both modes, as a ratio. B's
/// work is calibrated in the same run to what B can do during the N waits, so a perfect
/// overlap gives 2x. VMM_BENCH_APF_PAGES / VMM_BENCH_APF_LATENCY_US override N and latency.
/// Async PF runs twice: in process (`AsyncPFController`) and through the dlopen'd plugin
/// (Plugins/AsyncPF, the release build, with `PluginAsyncPF` on the pager).
enum AsyncPFBench {
    enum Mode { case stall, inProcess, plugin }

    static let lazyBase: UInt64 = 0x20_0000

    struct Run {
        let nanoseconds: UInt64
        /// B's counter increments while A waited for its pages.
        let bWhileMissing: UInt64
        let notPresent: Int
        let synchronous: Int
    }

    static func run(rounds: Int) throws {
        let pages = getenv("VMM_BENCH_APF_PAGES").flatMap { Int(String(cString: $0)) } ?? 32
        let latency = getenv("VMM_BENCH_APF_LATENCY_US").flatMap { UInt32(String(cString: $0)) } ?? 2_000
        guard (1...256).contains(pages) else { throw VMMError.invalidArgument("VMM_BENCH_APF_PAGES must be 1...256, not \(pages)") }
        let kvm = try KVM.open()
        print("== async page faults: \(pages) missing pages, \(latency) µs each, \(rounds) rounds ==")
        // Calibration: how much B gets done during A's waits when it never runs out of work.
        let calibration = try once(kvm, .inProcess, pages: pages, latency: latency, bWork: 0)
        let work = max(1, calibration.bWhileMissing)
        print("  B's work per run: \(work) iterations (what B did during the \(pages) waits in a calibration run)")
        var syncTimes: [Double] = [], asyncTimes: [Double] = [], pluginTimes: [Double] = []
        var syncOverlap: [Double] = [], asyncOverlap: [Double] = [], pluginOverlap: [Double] = []
        var last: (Run, Run, Run)?
        for _ in 0..<rounds {
            let s = try once(kvm, .stall, pages: pages, latency: latency, bWork: work)
            let a = try once(kvm, .inProcess, pages: pages, latency: latency, bWork: work)
            let p = try once(kvm, .plugin, pages: pages, latency: latency, bWork: work)
            syncTimes.append(Double(s.nanoseconds) / 1e6)
            asyncTimes.append(Double(a.nanoseconds) / 1e6)
            pluginTimes.append(Double(p.nanoseconds) / 1e6)
            syncOverlap.append(Double(s.bWhileMissing) / Double(pages))
            asyncOverlap.append(Double(a.bWhileMissing) / Double(pages))
            pluginOverlap.append(Double(p.bWhileMissing) / Double(pages))
            last = (s, a, p)
        }
        let (s, a, p) = last!
        print("  synchronous stall: \(fmt(median(syncTimes), 2)) ms for the workload; B work while a page was missing: \(fmt(median(syncOverlap), 0)) per page (not-present \(s.notPresent), sync fetches \(s.synchronous))")
        print("  async PF:          \(fmt(median(asyncTimes), 2)) ms for the workload; B work while a page was missing: \(fmt(median(asyncOverlap), 0)) per page (not-present \(a.notPresent), sync fetches \(a.synchronous))")
        print("  async PF (plugin): \(fmt(median(pluginTimes), 2)) ms for the workload; B work while a page was missing: \(fmt(median(pluginOverlap), 0)) per page (not-present \(p.notPresent), sync fetches \(p.synchronous))")
        print("  ratio (stall time / async time, same work): \(fmt(median(syncTimes) / median(asyncTimes), 2))x in process, \(fmt(median(syncTimes) / median(pluginTimes), 2))x through the plugin")
    }

    /// The plugin's "vCPU 0: not-present N, ready N, synchronous N, ..." line -> counts.
    static func counts(_ line: String) -> [String: Int] {
        var out: [String: Int] = [:]
        for item in line.drop(while: { $0 != ":" }).dropFirst().split(separator: ",") {
            let words = item.split(separator: " ")
            if let n = words.last.flatMap({ Int($0) }) { out[words.dropLast().joined(separator: " ")] = n }
        }
        return out
    }

    static func once(_ kvm: KVM, _ mode: Mode, pages: Int, latency: UInt32, bWork: UInt64) throws -> Run {
        let (vm, vcpu) = try makeGuest(kvm, "apf_kernel") { _ in }
        defer { vm.close() }
        _ = vcpu
        try vm.memory.addRegion(name: "lazy", guestAddress: lazyBase, size: UInt64(pages) * 4096, backing: .anonymous)
        let image = [UInt8](repeating: 0x5a, count: pages * 4096)
        let pager = try DemandPager(memory: vm.memory, region: "lazy",
                                    source: InMemoryPageSource(guestBase: lazyBase, bytes: image, latencyMicroseconds: latency))
        defer { pager.close() }
        try vm.memory.write(0x20158, UInt64(pages))
        try vm.memory.write(0x20160, bWork)
        let dispatcher = ExitDispatcher()
        try dispatcher.registerPIO(port: 0xf4, owner: "exit") { io, _ in .stop(.guestExit(code: Int32(io.value))) }
        try dispatcher.registerPIO(port: 0xf5, owner: "guest-fatal") { io, _ in .fail("guest kernel took fatal vector \(io.value & 0xff)") }
        var controller: AsyncPFController?
        var plugins: PluginHost?, bridge: PluginAsyncPF?
        let lines = LogLines()
        if mode == .plugin {
            let host = PluginHost(vm: vm, dispatcher: dispatcher)
            host.logHandler = { _, id, message in if id == "org.vmmkit.async-pf" { lines.append(message) } }
            try host.load(PluginSearchPath.packageRoot! + "/.build/release/libAsyncPF.so")
            try pager.attach(to: dispatcher, vcpus: vm.vcpus)
            bridge = try PluginAsyncPF(pager: pager)
            try bridge!.attach(to: host)
            plugins = host
        } else {
            controller = try AsyncPFController(pager: pager, policy: AsyncPFPolicy(featuresAdvertised: mode == .inProcess))
            try controller!.attach(to: vm, dispatcher: dispatcher)
        }
        let start = now()
        let reasons = try vm.run(dispatcher)
        let elapsed = now() - start
        controller?.close()
        bridge?.close()
        plugins?.close()
        guard reasons == [.guestExit(code: 0)] else { throw VMMError.invalidArgument("async-PF benchmark guest stopped: \(reasons)") }
        var overlap: UInt64 = 0
        for i in 0..<pages { overlap += try vm.memory.read(0x22000 + UInt64(i) * 8) }
        if let stats = controller?.state(of: 0)?.statistics {
            return Run(nanoseconds: elapsed, bWhileMissing: overlap, notPresent: stats.notPresentInjected, synchronous: stats.synchronousFetches)
        }
        let c = counts(lines.all.first { $0.hasPrefix("vCPU 0:") } ?? "")
        return Run(nanoseconds: elapsed, bWhileMissing: overlap, notPresent: c["not-present"] ?? 0, synchronous: c["synchronous"] ?? 0)
    }
}

/// Log lines from plugin threads.
final class LogLines: @unchecked Sendable {
    private let lines = Lock<[String]>([])
    func append(_ line: String) { lines.withLock { $0.append(line) } }
    var all: [String] { lines.withLock { $0 } }
}
