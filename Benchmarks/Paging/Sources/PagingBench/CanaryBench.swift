import CKVM
import Glibc
import VMMKit

/// The canary's cost per exit: poison + classify over a real `kvm_run`-sized buffer
/// holding an exit record, against the same loop that only writes the record (what the
/// kernel does anyway), in one run. Also the whole `VCPU.run()` on a scripted vCPU.
enum CanaryBench {
    static func run(iterations: Int, rounds: Int) {
        let size = 3 * 4096
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0, count: size)
        let entry = ExitCanary.Entry(poisoned: true, reasonBefore: ExitCanary.poisonReason)
        var baseline: [Double] = [], canary: [Double] = []
        var sink = 0
        for _ in 0..<rounds {
            var t = now()
            for i in 0..<iterations {
                buffer.storeBytes(of: UInt32(KVM_EXIT_HLT), toByteOffset: 8, as: UInt32.self)
                sink &+= Int(buffer.load(fromByteOffset: 8 + (i & 3), as: UInt8.self))
            }
            baseline.append(Double(now() - t) / Double(iterations))
            t = now()
            for i in 0..<iterations {
                ExitCanary.poison(buffer)
                buffer.storeBytes(of: UInt32(KVM_EXIT_HLT), toByteOffset: 8, as: UInt32.self)
                if case .exit = ExitCanary.classify(rc: 0, errno: 0, run: buffer, size: size, entry: entry) { sink &+= 1 }
                sink &+= Int(buffer.load(fromByteOffset: 8 + (i & 3), as: UInt8.self))
            }
            canary.append(Double(now() - t) / Double(iterations))
        }
        let cost = median(canary) - median(baseline)
        print("canary: poison + classify \(fmt(cost)) ns/exit (loop with canary \(fmt(median(canary))) ns, without \(fmt(median(baseline))) ns; target <= 10 ns) [\(sink & 1)]")

        // Whole run() on a scripted vCPU: one HLT step per exit, handled by nobody.
        let steps = 200_000
        let script = ScriptedVCPU(steps: Array(repeating: .hlt, count: steps))
        script.capturesEntries = false
        let vcpu = VCPU(id: 0, backend: script, memory: .detached())
        let t = now()
        for _ in 0..<steps { _ = try? vcpu.run() }
        print("canary: VCPU.run() on a scripted vCPU (poison, script step, classify, decode, history): \(fmt(Double(now() - t) / Double(steps))) ns/exit")
    }
}
