import Glibc
import Synchronization
import Testing
import VMMAsyncPF
import VMMPaging
@testable import VMMKit

/// Soak and load (RELIABILITY.md). In the suite the loads are scaled down; with
/// VMM_SOAK=full (scripts/soak) they run at full size: 1,000 create/run/close cycles
/// with the default plugins, and 4 vCPUs making 10^7 PIO and MMIO exits.
@Suite("Soak and load", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct SoakTests {
    static let full = getenv("VMM_SOAK").map { String(cString: $0) == "full" } ?? false

    static func residentBytes() -> Int {
        guard let f = fopen("/proc/self/statm", "r") else { return -1 }
        defer { fclose(f) }
        var size = 0, resident = 0
        guard withUnsafeMutablePointer(to: &size, { s in withUnsafeMutablePointer(to: &resident) { r in
            withVaList([s, r]) { vfscanf(f, "%ld %ld", $0) } } }) == 2 else { return -1 }
        return resident * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    static func now() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }

    /// A guest that reads a page, prints 'A' on COM1 and writes 0 to the debug-exit
    /// port, under the launcher's default plugins (DebugExit, MemoryFault fill=zero,
    /// UART with output none, AsyncPF), the handler watchdog and seccomp; `withPager`:
    /// the page comes through the demand pager (userfaultfd) and the async-PF bridge,
    /// as the launcher runs a snapshot.
    static func cycle(withPager: Bool) throws {
        let guest = try TestGuest("hlt", memoryMiB: 4)
        let host = PluginHost(vm: guest.vm, dispatcher: guest.dispatcher)
        try guest.vm.memory.writeBytes(GuestLayout.codeStart, [
            0x8b, 0x04, 0x25, 0x00, 0x00, 0x10, 0x00, // mov 0x100000,%eax (a missing page)
            0x66, 0xba, 0xf8, 0x03, 0xb0, 0x41, 0xee, // mov $0x3f8,%dx; mov $'A',%al; out
            0x31, 0xc0, 0x66, 0xba, 0xf4, 0x00, 0xee, 0xf4, // xor %eax,%eax; mov $0xf4,%dx; out; hlt
        ])
        try host.load("DebugExit", config: "port=0xf4")
        try host.load("MemoryFault", config: "fill=zero,priority=-1000")
        try host.load("UART", config: "port=0x3f8,output=none")
        try host.load("AsyncPF")
        try host.setHandlerBudget(10)
        // The pager's dispatcher handlers hold it weakly: dispatcher -> pager ->
        // PluginPageSource -> PluginHost -> dispatcher was a retain cycle that kept the
        // VM's fd and the userfaultfd open, 2 fds a cycle (RELIABILITY.md).
        var pager: DemandPager?, bridge: PluginAsyncPF?
        if withPager {
            pager = try DemandPager(memory: guest.vm.memory, region: "ram", source: PluginPageSource(host))
            try pager!.attach(to: guest.dispatcher, vcpus: guest.vm.vcpus)
            bridge = try PluginAsyncPF(pager: pager!)
            try bridge!.attach(to: host)
        } else {
            try guest.vm.memory.write(0x100000, UInt32(0)) // the page the guest reads
        }
        guest.vm.setSeccomp(.vcpuDefault)
        let reason = try guest.run()
        #expect(reason == .guestExit(code: 0))
        if let pager { #expect(pager.statistics.pagesFetched == 1) }
        bridge?.close()
        pager?.close()
        host.close()
        guest.vm.close()
    }

    @Test("create/run/close cycles with the default plugins: fds and mappings back to start, RSS growth < 1 MiB",
          arguments: [false, true])
    func cycles(withPager: Bool) throws {
        precondition(PluginFixtures.built)
        let count = Self.full ? 1000 : 40
        for _ in 0..<3 { try Self.cycle(withPager: withPager) } // warm up: lazily created process-wide state
        let (fds, maps, rss) = (openFDs(), mappingCount(), Self.residentBytes())
        let start = Self.now()
        for _ in 0..<count { try Self.cycle(withPager: withPager) }
        let seconds = Self.now() - start
        let growth = Self.residentBytes() - rss
        // A leak is growth. Fewer is possible in the full suite: objects and malloc arena
        // heaps of earlier tests' threads may be released meanwhile.
        #expect(fdsOpened(since: fds) == [])
        // A mapping leaked a cycle is `count` more; a thread that an earlier test's library
        // starts meanwhile brings its stack and guard page (2; seen once: 334 -> 336), which
        // the process-wide count cannot tell from ours. So a few are allowed, never a cycle's.
        #expect(mappingsUnreliable || mappingCount() <= maps + 4)
        #expect(mappingsUnreliable || growth < 1 << 20) // ASan's quarantine keeps freed memory resident
        print("soak\(withPager ? " (demand pager)" : ""): \(count) cycles in \(Int(seconds * 1000)) ms (\(Int(seconds * 1e6) / count) us/cycle); fds \(fds.count) -> \(openFDCount()), mappings \(maps) -> \(mappingCount()), RSS growth \(growth / 1024) KiB, plugin handles created \(PluginHandle.created)")
    }

    /// Each vCPU: RCX times { out %al,$0x537; mov %eax,0xd0001000; lock incq 0x20000 }; hlt.
    static func loadCode(iterations: UInt32) -> [UInt8] {
        let n = withUnsafeBytes(of: iterations.littleEndian) { Array($0) }
        return [0xb9] + n // mov $n,%ecx
            + [0x66, 0xba, 0x37, 0x05, 0xbb, 0x00, 0x10, 0x00, 0xd0] // mov $0x537,%dx; mov $0xd0001000,%ebx
            + [0xee, 0x89, 0x03, 0xf0, 0x48, 0xff, 0x04, 0x25, 0x00, 0x00, 0x02, 0x00] // out; mov %eax,(%rbx); lock incq 0x20000
            + [0xff, 0xc9, 0x75, 0xf0, 0xf4] // dec %ecx; jnz; hlt
    }

    static func counts() -> (pio: UInt64, mmio: UInt64) {
        var out: [UInt64] = [0, 0]
        PluginWatchdogTests.symbol("guard_fixture_counts", as: (@convention(c) (UnsafeMutablePointer<UInt64>) -> Void).self)(&out)
        return (out[0], out[1])
    }

    /// Runs the load guest on 4 vCPUs through the Guard plugin's counting handlers while
    /// `stormers` threads pause and resume the vCPUs until they halt. Returns the
    /// guest's own count of iterations and the plugin's counts of exits.
    static func load(iterations: UInt32, stormers: Int, maxPauses: Int = 20_000) throws -> (guest: UInt64, pio: UInt64, mmio: UInt64, seconds: Double, pauses: Int) {
        precondition(PluginFixtures.built)
        let guest = try TestGuest("hlt", vcpus: 4)
        let host = PluginHost(vm: guest.vm, dispatcher: guest.dispatcher)
        defer { host.close() }
        try guest.vm.memory.writeBytes(GuestLayout.codeStart, loadCode(iterations: iterations))
        try host.load(PluginFixtures.fixture("Guard"))
        let vcpus = guest.vm.vcpus
        let done = Flag()
        let pauses = Recorder<Int>()
        let start = now()
        for v in vcpus { try v.start(guest.dispatcher) }
        let threads = (0..<stormers).map { k in
            spawn {
                // Bounded: a storm that never lets up may keep a vCPU parked for as long
                // as it lasts (pause of a parked vCPU returns at once); what is tested is
                // that no storm deadlocks or loses an exit, and the guest ends after it.
                var i = k, n = 0
                while !done.isSet && n < maxPauses {
                    let v = vcpus[i % vcpus.count]
                    v.pause()
                    v.resume()
                    i += 1 + k
                    n += 1
                }
                pauses.append(n)
            }
        }
        let reasons = vcpus.map { $0.join() }
        let seconds = now() - start
        done.set()
        threads.forEach { pthread_join($0, nil) }
        #expect(reasons.allSatisfy { $0 == .halted })
        let (pio, mmio) = counts()
        return (try guest.vm.memory.read(0x20000, as: UInt64.self), pio, mmio, seconds, pauses.all.reduce(0, +))
    }

    @Test("4 vCPUs make PIO and MMIO exits through plugin handlers: guest and host counts equal")
    func exits() throws {
        // Full: 4 x 1,250,000 iterations x 2 exits = 10^7 exits.
        let iterations: UInt32 = Self.full ? 1_250_000 : 2_500
        let r = try Self.load(iterations: iterations, stormers: 0)
        #expect(r.guest == 4 * UInt64(iterations))
        #expect(r.pio == r.guest && r.mmio == r.guest)
        print("load: \(r.pio + r.mmio) exits (\(r.pio) PIO, \(r.mmio) MMIO) on 4 vCPUs in \(Int(r.seconds * 1000)) ms, \(Int(r.seconds * 1e9) / Int(r.pio + r.mmio)) ns/exit of wall time")
    }

    @Test("pause/resume storms from 3 threads while 4 vCPUs exit: no deadlock, no exit lost or doubled")
    func pauseStorm() throws {
        let iterations: UInt32 = Self.full ? 250_000 : 2_500
        let r = try Self.load(iterations: iterations, stormers: 3, maxPauses: Self.full ? 200_000 : 2_000)
        #expect(r.guest == 4 * UInt64(iterations))
        #expect(r.pio == r.guest && r.mmio == r.guest)
        print("storm: \(r.pauses) pause/resume pairs during \(r.pio + r.mmio) exits")
    }
}

/// A flag set once, read from any thread.
final class Flag: @unchecked Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .releasing) }
    var isSet: Bool { value.load(ordering: .acquiring) }
}

/// Runs `body` on a new thread; join it with pthread_join.
func spawn(_ body: @escaping @Sendable () -> Void) -> pthread_t {
    final class Box { let body: @Sendable () -> Void; init(_ b: @escaping @Sendable () -> Void) { body = b } }
    var tid = pthread_t()
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    let rc = pthread_create(&tid, nil, { raw in
        Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue().body()
        return nil
    }, box)
    precondition(rc == 0, "pthread_create failed")
    return tid
}
