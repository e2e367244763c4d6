import CPagingBaseline
import Glibc
import GuestPayloads
import VMMKit
import VMMPaging

/// Pages per second demand-paged into the same ring-3 guest (one read per page) by the
/// raw C userfaultfd loop and by `DemandPager`, in one run, with the ratio. The paths:
/// the default of `vmm run` (the MemoryFault snapshot plugin through `PluginPageSource`;
/// its handler is any-thread, so the fault router installs pages with no kick), the
/// kick path (each vCPU resolves its own fault: what a guest with async PF enabled, or a
/// source only the vCPU thread may call, gets) and the router with a snapshot file.
enum PagingBench {
    enum Path { case pluginDefault, pluginReadAhead, kick, router }
    static let readAhead = 16

    static let dataStart: UInt64 = 0x10_0000

    static func run(pages: Int, rounds: Int) throws {
        let ramSize = (UInt64(pages) * 4096 + dataStart + (2 << 20) - 1) & ~((2 << 20) - 1)
        let path = "/tmp/paging-bench-\(getpid()).mem"
        defer { unlink(path) }
        try writeSnapshot(path, size: Int(ramSize))
        let snapshotFD = open(path, O_RDONLY | O_CLOEXEC)
        defer { close(snapshotFD) }
        let kvm = try KVM.open()
        var c: [Double] = [], kick: [Double] = [], router: [Double] = [], plugin: [Double] = [], ahead: [Double] = []
        for round in 0..<rounds {
            // Rotate the order so no variant always runs first (cold) or last.
            for variant in (0..<5).map({ ($0 + round) % 5 }) {
                switch variant {
                case 0: c.append(try timeC(kvm, ramSize: ramSize, pages: pages, snapshotFD: snapshotFD))
                case 1: kick.append(try timeSwift(kvm, ramSize: ramSize, pages: pages, path: path, .kick))
                case 2: router.append(try timeSwift(kvm, ramSize: ramSize, pages: pages, path: path, .router))
                case 3: ahead.append(try timeSwift(kvm, ramSize: ramSize, pages: pages, path: path, .pluginReadAhead))
                default: plugin.append(try timeSwift(kvm, ramSize: ramSize, pages: pages, path: path, .pluginDefault))
                }
            }
        }
        let rate = { (ns: Double) in fmt(Double(pages) / (ns / 1e9), 0) }
        let us = { (v: [Double]) in v.map { fmt($0 / Double(pages) / 1000, 0) } }
        print("paging: \(pages) pages, ring-3 guest, median of \(rounds) (all rounds, us/page: C \(us(c)), vmm run default \(us(plugin)), vCPUs \(us(kick)), router \(us(router)))")
        print("  raw C userfaultfd loop:                 \(rate(median(c))) pages/s (\(fmt(median(c) / Double(pages) / 1000)) us/page)")
        print("  vmm run default (MemoryFault snapshot plugin, any-thread, router): \(rate(median(plugin))) pages/s, \(fmt(median(plugin) / median(c)))x the C time (target <= 1.10x)")
        print("  the same with read-ahead \(readAhead) (sequential guest): \(rate(median(ahead))) pages/s, \(fmt(median(ahead) / median(c)))x the C time")
        print("  DemandPager, vCPUs resolve (kick):      \(rate(median(kick))) pages/s, \(fmt(median(kick) / median(c)))x the C time")
        print("  DemandPager, router resolves (file):    \(rate(median(router))) pages/s, \(fmt(median(router) / median(c)))x the C time")
    }

    static func writeSnapshot(_ path: String, size: Int) throws {
        var bytes = [UInt8](repeating: 0, count: size)
        for i in stride(from: 0, to: size, by: 4096) { bytes[i] = UInt8(truncatingIfNeeded: i >> 12) }
        guard let f = fopen(path, "w") else { throw VMMError.systemCallFailed(name: "fopen \(path)", errno: .init(rawValue: errno)) }
        fwrite(bytes, 1, size, f)
        fclose(f)
    }

    static func guest(_ kvm: KVM, ramSize: UInt64, pages: Int) throws -> (VirtualMachine, ExitDispatcher) {
        let vm = try kvm.createVM()
        try vm.memory.addRegion(name: "ram", guestAddress: 0, size: ramSize)
        var size = 0
        let start = guest_payload("dp_checksum", &size)!
        try vm.memory.writeBytes(GuestLayout.codeStart, Array(UnsafeBufferPointer(start: start, count: size)))
        let vcpu = try vm.createVCPU()
        try vcpu.setupLongMode(entry: GuestLayout.codeStart, stack: 0x80000, ring: 3)
        var regs = try vcpu.registers()
        regs.rdi = dataStart; regs.rsi = dataStart + UInt64(pages) * 4096; regs.r8 = 4096; regs.r11 = 0
        try vcpu.setRegisters(regs)
        let dispatcher = ExitDispatcher()
        try dispatcher.registerPIO(port: 0x20, count: 2, owner: "bench") { _, _ in .handled }
        try dispatcher.registerPIO(port: 0xf4, owner: "bench") { _, _ in .stop(.guestExit(code: 0)) }
        return (vm, dispatcher)
    }

    static func check(_ reasons: [StopReason]) throws {
        guard reasons == [.guestExit(code: 0)] else { throw VMMError.invalidArgument("benchmark guest stopped with \(reasons)") }
    }

    static func timeSwift(_ kvm: KVM, ramSize: UInt64, pages: Int, path: String, _ route: Path) throws -> Double {
        let (vm, dispatcher) = try guest(kvm, ramSize: ramSize, pages: pages)
        defer { vm.close() }
        var plugins: PluginHost?
        defer { plugins?.close() }
        let source: any PageSource
        if route == .pluginDefault || route == .pluginReadAhead {
            let host = PluginHost(vm: vm, dispatcher: dispatcher)
            plugins = host
            // As `vmm run --plugin MemoryFault,snapshot=FILE` loads them (the fill=zero default below it).
            try host.load("MemoryFault", config: "fill=zero,priority=-1000")
            try host.load("MemoryFault", config: "snapshot=\(path)")
            source = PluginPageSource(host)
        } else {
            source = try SnapshotFilePageSource(path: path)
        }
        let pager = try DemandPager(memory: vm.memory, region: "ram", source: source, only: plugins?.pageSourceRanges)
        defer { pager.close() }
        if route == .kick { pager.vcpuWantsFaults = { _ in true } }
        if route == .pluginReadAhead { pager.readAheadPages = readAhead }
        try pager.attach(to: dispatcher, vcpus: vm.vcpus)
        let t = now()
        try check(try vm.run(dispatcher))
        let elapsed = Double(now() - t)
        let fetched = pager.statistics.pagesFetched
        guard fetched == pages || (route == .pluginReadAhead && fetched >= pages && fetched <= pages + readAhead) else { throw VMMError.invalidArgument("pager fetched \(pager.statistics.pagesFetched) pages, expected \(pages)") }
        return elapsed
    }

    static func timeC(_ kvm: KVM, ramSize: UInt64, pages: Int, snapshotFD: Int32) throws -> Double {
        let (vm, dispatcher) = try guest(kvm, ramSize: ramSize, pages: pages)
        defer { vm.close() }
        let region = vm.memory.regions[0]
        let uffd = cpaging_register(region.hostAddress, Int(region.size))
        guard uffd >= 0 else { throw VMMError.systemCallFailed(name: "cpaging_register", errno: .init(rawValue: errno)) }
        defer { close(uffd) }
        var pipeFDs: [Int32] = [0, 0]
        pipe(&pipeFDs)
        defer { close(pipeFDs[0]); close(pipeFDs[1]) }
        final class Job { let uffd, snap, stop: Int32; let host: UnsafeMutableRawPointer; let size: Int; var installed = 0
            init(_ u: Int32, _ h: UnsafeMutableRawPointer, _ s: Int, _ f: Int32, _ p: Int32) { uffd = u; host = h; size = s; snap = f; stop = p } }
        let job = Job(uffd, region.hostAddress, Int(region.size), snapshotFD, pipeFDs[0])
        let raw = Unmanaged.passRetained(job).toOpaque()
        var thread = pthread_t()
        pthread_create(&thread, nil, { p in
            let job = Unmanaged<Job>.fromOpaque(p!).takeRetainedValue()
            job.installed = cpaging_serve(job.uffd, job.host, job.size, job.snap, 0, job.stop)
            return nil
        }, raw)
        let t = now()
        let reasons = try vm.run(dispatcher)
        let elapsed = Double(now() - t)
        var one: UInt8 = 1
        write(pipeFDs[1], &one, 1)
        pthread_join(thread, nil)
        try check(reasons)
        // Pages the VMM wrote (code, tables) were resident: every other touched page went through C.
        guard job.installed == pages else { throw VMMError.invalidArgument("C loop installed \(job.installed) pages, expected \(pages)") }
        return elapsed
    }
}
