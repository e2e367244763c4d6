import Foundation
import Glibc
import Testing
@testable import VMMKit
@testable import VMMSnapshot

/// The snapshot tests' guest: payload snap_work on each vCPU (ring 3, its own 64 data
/// pages and report port 0x30 + id), with a gate before round `gate` that stays shut
/// until `released`.
final class SnapshotGuest {
    static let rounds: UInt64 = 40
    static let gate: UInt64 = 15
    static let pages: UInt64 = 64
    static func dataStart(_ vcpu: Int) -> UInt64 { 0x10_0000 + UInt64(vcpu) * 0x10_0000 }

    let guest: TestGuest
    let released: Bool
    let reports = Lock<[UInt32: [UInt32]]>([:])
    private let atGate = Lock<Set<UInt32>>([])
    private let lock = ConditionLock()

    init(vcpus: Int, irqchip: Bool = false, pit: Bool = false, memoryMiB: UInt64 = 8,
         backing: MemoryRegion.Backing = .anonymous, released: Bool) throws {
        guest = try TestGuest("snap_work", ring: 3, vcpus: vcpus, memoryMiB: memoryMiB, backing: backing, irqchip: irqchip)
        if pit { try guest.vm.createPIT() }
        self.released = released
        for (i, vcpu) in guest.vm.vcpus.enumerated() {
            // With the in-kernel irqchip, APs wait for INIT/SIPI; this guest has none.
            if irqchip { try vcpu.setMPState(0) }
            var regs = try vcpu.registers()
            regs.rdi = Self.dataStart(i); regs.rsi = Self.pages; regs.rcx = Self.rounds
            regs.r8 = 0x30 + UInt64(i); regs.r10 = Self.gate
            try vcpu.setRegisters(regs)
            // Every other data page starts non-zero; the rest stay zero (sparse).
            for p in stride(from: 0, to: Self.pages, by: 2) {
                try guest.vm.memory.write(Self.dataStart(i) + p * 4096, (p + 1) &* 0x9e37_79b9_7f4a_7c15)
            }
        }
        let d = guest.dispatcher
        try d.registerPIO(port: 0x30, count: 8, owner: "reports") { [self] io, vcpu in
            reports.withLock { $0[vcpu.id, default: []].append(io.element()) }
            return .handled
        }
        try d.registerPIO(port: 0x23, owner: "gate") { [self] io, vcpu in
            io.setElement(0, released ? 1 : 0)
            if !released { arrive(vcpu.id) }
            return .handled
        }
        try d.registerPIO(port: 0xf4, owner: "exit") { io, _ in .stop(.guestExit(code: Int32(bitPattern: io.element()))) }
    }

    private func arrive(_ id: UInt32) {
        lock.lock()
        _ = atGate.withLock { $0.insert(id) }
        lock.broadcast()
        lock.unlock()
    }

    /// Waits until every vCPU spins at the gate (a bound of 120 s turns a guest that
    /// never gets there into a failure instead of a hang).
    func waitAtGate() -> Bool {
        let count = guest.vm.vcpus.count
        let deadline = Deadline.after(seconds: 120)
        lock.lock()
        defer { lock.unlock() }
        while atGate.withLock({ $0.count }) < count {
            if !lock.wait(until: deadline) { return false }
        }
        return true
    }

    /// Runs to the end (released guests only).
    func runToEnd() throws -> [StopReason] { try guest.vm.run(guest.dispatcher) }

    /// Starts the vCPUs, waits for the gate, pauses them all and saves a snapshot.
    func snapshotAtGate(to dir: String) throws {
        for vcpu in guest.vm.vcpus { try vcpu.start(guest.dispatcher) }
        try #require(waitAtGate(), "the guest never reached its gate")
        for vcpu in guest.vm.vcpus { vcpu.pause() }
        try VMSnapshot.save(guest.vm, dispatcher: guest.dispatcher, to: dir)
    }

    var allReports: [UInt32: [UInt32]] { reports.withLock { $0 } }
}

/// A scratch directory per test, removed afterwards.
final class ScratchDir {
    let path: String
    init(_ name: String) {
        path = NSTemporaryDirectory() + "vmm-snap-\(getpid())-\(name)-\(UInt32.random(in: 0...UInt32.max))"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    /// VMM_TEST_KEEP_SNAPSHOTS=1 keeps them for a look after a failure.
    deinit { if getenv("VMM_TEST_KEEP_SNAPSHOTS") == nil { try? FileManager.default.removeItem(atPath: path) } }
    func sub(_ name: String) -> String { path + "/" + name }
}

/// `SnapshotRunner restore DIR`, parsed.
struct RunnerResult {
    var status: Int32
    var reports: [UInt32: [UInt32]] = [:]
    var stops: [String] = []
    var fetched = -1
    var prefetched = -1
    var stderr: String

    static func restore(_ dir: String, eager: Bool = false, flags: [String] = []) throws -> RunnerResult {
        let binary = VMMProcess.root.appendingPathComponent(".build/debug/SnapshotRunner").path
        let r = try VMMProcess.run(binary: binary, ["restore", dir] + (eager ? ["--eager"] : []) + flags)
        var result = RunnerResult(status: r.status, stderr: r.stderr)
        for line in r.stdout.split(separator: "\n") {
            let f = line.split(separator: " ", maxSplits: 2).map(String.init)
            switch f.first {
            case "vcpu": result.reports[UInt32(f[1])!, default: []].append(UInt32(f[2], radix: 16)!)
            case "stop": result.stops.append(f[1] + " " + f[2])
            case "fetched": result.fetched = Int(f[1])!
            case "prefetched": result.prefetched = Int(f[1])!
            default: Issue.record("unexpected runner output: \(line)")
            }
        }
        return result
    }
}

/// Names, sizes and contents of every file in a directory: "nothing changed on disk".
func directoryFingerprint(_ dir: String) throws -> [String: Data] {
    var result: [String: Data] = [:]
    guard FileManager.default.fileExists(atPath: dir) else { return result }
    for name in try FileManager.default.contentsOfDirectory(atPath: dir) {
        result[name] = try Data(contentsOf: URL(fileURLWithPath: dir + "/" + name))
    }
    return result
}
