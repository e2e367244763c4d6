// restore-bench: restore to first guest instruction and to guest done, for guests of
// 64 MiB, 256 MiB and 1 GiB that touch 25 % of their memory: lazy (userfaultfd), eager
// (memory copied first, the memory file in the page cache), lazy with working-set
// prefetch, against a cold boot of the same guest, all measured in this one run.
//   restore-bench [--rounds N] [--sizes 64,256,1024] [--fraction 0.25] [--dir DIR]
//                 [--modes cold,eager,lazy,prefetch] (a subset: for profiling)
import Glibc
import VMMKit
import VMMSnapshot

struct Options {
    var rounds = 5
    var sizesMiB: [UInt64] = [64, 256, 1024]
    var fraction = 0.25
    var dir = "/tmp/vmm-restore-bench-\(getpid())"
    var modes = Mode.allCases
}

func parse() -> Options {
    var o = Options()
    var args = CommandLine.arguments.dropFirst()
    func value(_ flag: String) -> String {
        guard let v = args.popFirst() else { fatalError("\(flag) needs a value") }
        return v
    }
    while let a = args.popFirst() {
        switch a {
        case "--rounds": o.rounds = max(1, Int(value(a)) ?? 5)
        case "--sizes": o.sizesMiB = value(a).split(separator: ",").compactMap { UInt64($0) }
        case "--fraction": o.fraction = min(0.9, max(0.01, Double(value(a)) ?? 0.25))
        case "--dir": o.dir = value(a)
        case "--modes": o.modes = value(a).split(separator: ",").map { m in Mode.allCases.first { "\($0)" == m } ?? { fatalError("unknown mode \(m)") }() }
        default: fatalError("unknown argument \(a)")
        }
    }
    return o
}

enum Mode: String, CaseIterable {
    case cold = "cold boot", eager = "eager", lazy = "lazy", prefetch = "lazy + prefetch"
}

struct Sample {
    var first: Double, done: Double
    /// Restores: ms to the snapshot opened and checked, the VM built (state, memory or
    /// pagers), the pagers attached; the rest of `first` is the vCPU start and the
    /// faults of the first instruction.
    var opened = 0.0, built = 0.0, attached = 0.0
}

func ms(_ ns: UInt64) -> Double { Double(ns) / 1e6 }

/// One run of `mode`; the times from the start of the boot or restore (before the
/// snapshot is opened) to the first guest instruction and to the guest's end.
func measure(_ mode: Mode, kvm: KVM, dir: String, memory: UInt64, pages: UInt64, recordWorkingSet: Bool = false) throws -> Sample {
    let clock = RunClock()
    let dispatcher = try clock.dispatcher(stopAtGate: false)
    let start = now()
    let vm: VirtualMachine
    var restored: RestoredVM?
    var image: SnapshotImage?
    var prefetch: WorkingSetPrefetch?
    var phases = (0.0, 0.0, 0.0)
    if mode == .cold {
        vm = try BenchGuest.boot(kvm, memory: memory, touchedPages: pages)
    } else {
        let opened = try SnapshotImage(path: dir)
        image = opened
        phases.0 = ms(now() - start)
        let r = try opened.restore(on: kvm, memory: mode == .eager ? .eager : .lazy)
        phases.1 = ms(now() - start)
        try r.attach(to: dispatcher)
        phases.2 = ms(now() - start)
        if mode == .prefetch { prefetch = try r.startPrefetch(opened.workingSet) }
        restored = r
        vm = r.vm
    }
    let reasons = try vm.run(dispatcher)
    if let prefetch { _ = try prefetch.join().get() }
    guard reasons == [.guestExit(code: BenchGuest.expectedSum(pages))] else {
        fatalError("\(mode.rawValue), \(memory >> 20) MiB: the guest ended with \(reasons), expected its sum \(BenchGuest.expectedSum(pages))")
    }
    if recordWorkingSet, let restored, let image {
        try image.recordWorkingSet(restored.touchedPages)
        print("  working set: \(restored.touchedPages.count) pages")
    }
    if let restored { restored.close() } else { vm.close() }
    return Sample(first: ms(clock.firstInstruction.load(ordering: .relaxed) - start),
                  done: ms(clock.done.load(ordering: .relaxed) - start),
                  opened: phases.0, built: phases.1, attached: phases.2)
}

/// Boots the guest, lets it write its pages, snapshots it at the gate, then records a
/// working set with one lazy restore and warms the page cache with one eager restore.
/// Returns the process's first lazy restore's time to the first instruction.
func prepare(kvm: KVM, dir: String, memory: UInt64, pages: UInt64) throws -> Double {
    let vm = try BenchGuest.boot(kvm, memory: memory, touchedPages: pages)
    let clock = RunClock()
    let dispatcher = try clock.dispatcher(stopAtGate: true)
    let reasons = try vm.run(dispatcher)
    guard reasons == [.requested] else { fatalError("snapshot run ended with \(reasons)") }
    let summary = try VMSnapshot.save(vm, dispatcher: dispatcher, to: dir)
    vm.close()
    print("  snapshot: \(summary.dataBytes >> 20) MiB of data in \(summary.memoryBytes >> 20) MiB")
    // The working set: what a lazy restore touched. The first restore of a process
    // also probes the host's effective CPUID (a throwaway VM), as every `vmm restore` does.
    let first = try measure(.lazy, kvm: kvm, dir: dir, memory: memory, pages: pages, recordWorkingSet: true)
    print("  its first lazy restore: first instruction \(fmt(first.first, 3)) ms   (opened \(fmt(first.opened, 2)), built \(fmt(first.built, 2)) ms)")
    _ = try measure(.eager, kvm: kvm, dir: dir, memory: memory, pages: pages)
    return first.first
}

func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

/// `value` with `digits` decimals (no Foundation for String(format:)).
func fmt(_ value: Double, _ digits: Int = 1) -> String {
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let scaled = Int64((value * scale).rounded())
    let whole = scaled / Int64(scale), frac = abs(scaled % Int64(scale))
    guard digits > 0 else { return "\(whole)" }
    let f = String(frac)
    return "\(whole)." + String(repeating: "0", count: digits - f.count) + f
}

func pad(_ s: String, _ n: Int) -> String { s + String(repeating: " ", count: max(0, n - s.count)) }

func loadAverage() -> String {
    var l = [Double](repeating: 0, count: 3)
    return getloadavg(&l, 3) == 3 ? l.map { fmt($0, 2) }.joined(separator: " ") : "?"
}

let o = parse()
let kvm = try KVM.open()
print("restore-bench: \(o.rounds) rounds per mode and size, interleaved; medians; \(Int(o.fraction * 100)) % of RAM touched; load \(loadAverage())")
var rows: [(UInt64, Mode, Sample)] = []
var ratios: [(UInt64, Double, Double)] = []
var firstRestores: [(UInt64, Double)] = []
for mib in o.sizesMiB {
    let memory = mib << 20
    let pages = UInt64(Double(memory / 4096) * o.fraction)
    guard BenchGuest.dataStart + pages * 4096 <= memory else { fatalError("\(mib) MiB is too small") }
    let dir = "\(o.dir)-\(mib)"
    _ = unlink(dir)
    print("\(mib) MiB, \(pages) pages touched:")
    firstRestores.append((mib, try prepare(kvm: kvm, dir: dir, memory: memory, pages: pages)))
    var samples: [Mode: [Sample]] = [:]
    for _ in 0..<o.rounds {
        for mode in o.modes {
            samples[mode, default: []].append(try measure(mode, kvm: kvm, dir: dir, memory: memory, pages: pages))
        }
    }
    var med: [Mode: Sample] = [:]
    for mode in o.modes {
        let s = samples[mode]!
        med[mode] = Sample(first: median(s.map(\.first)), done: median(s.map(\.done)),
                           opened: median(s.map(\.opened)), built: median(s.map(\.built)), attached: median(s.map(\.attached)))
        rows.append((mib, mode, med[mode]!))
        let m = med[mode]!
        let phases = mode == .cold ? "" : "   (opened \(fmt(m.opened, 2)), built \(fmt(m.built, 2)), attached \(fmt(m.attached, 2)) ms)"
        print("  \(pad(mode.rawValue, 16)) first instruction \(fmt(m.first, 3)) ms   done \(fmt(m.done, 1)) ms" + phases)
    }
    if let p = med[.prefetch], let e = med[.eager], let l = med[.lazy] { ratios.append((mib, p.done / e.done, l.first)) }
    _ = system("rm -rf '\(dir)'")
}

print("\n| guest RAM (25 % touched) | mode | restore to first instruction | restore to done | done vs cold boot |")
print("|---|---|---|---|---|")
for (mib, mode, s) in rows {
    let cold = rows.first { $0.0 == mib && $0.1 == .cold }?.2 ?? s
    print("| \(mib >= 1024 ? "\(mib >> 10) GiB" : "\(mib) MiB") | \(mode.rawValue) | \(fmt(s.first, 3)) ms | \(fmt(s.done, 1)) ms | \(fmt(s.done / cold.done, 2))x |")
}
print("")
for (mib, prefetchVsEager, lazyFirst) in ratios {
    print("\(mib) MiB: lazy restore to first instruction \(fmt(lazyFirst, 3)) ms (target < 10 ms at 1 GiB); lazy + prefetch done / eager done = \(fmt(prefetchVsEager, 2))x (target <= 1.1x)")
}
if let (mib, ms) = firstRestores.first {
    print("The run's first lazy restore (\(mib) MiB) also probed the host's effective CPUID (a throwaway VM), as every vmm restore process does: first instruction \(fmt(ms, 3)) ms; later restores reuse the probe.")
}
print("load after: \(loadAverage())")
