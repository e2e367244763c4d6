import Glibc
import Testing
@testable import VMMKit
@testable import VMMPaging

/// The dlopen'd Plugins/MemoryFault plugin as the page source of a DemandPager.
@Suite("MemoryFault plugin on real KVM", .enabled(if: KVMAvailability.present, KVMAvailability.reason),
       .enabled(if: UserfaultfdAvailability.present, UserfaultfdAvailability.reason))
struct MemoryFaultPluginTests {
    /// Loads libMemoryFault.so (built by scripts/build-plugins) on the guest's dispatcher.
    static func pluginSource(config: String? = nil) -> (PagedGuest) throws -> any PageSource {
        { guest in
            precondition(PluginFixtures.built, "scripts/build-plugins failed")
            let host = PluginHost(vm: guest.vm, dispatcher: guest.dispatcher)
            guest.plugins = host
            try host.load("MemoryFault", config: config ?? "snapshot=\(guest.snapshotPath)")
            return PluginPageSource(host)
        }
    }

    @Test("checksum guest paged in by the plugin, in each mode: sums match the file, writes land, fetched == touched",
          arguments: [(DemandPager.Mode.blocking, 3), (.blocking, 0), (.sigbus, 0)])
    func checksum(mode: DemandPager.Mode, ring: Int) throws {
        let length: UInt64 = ring == 3 ? 0x10_0000 : 0x8000
        let stride: UInt64 = ring == 3 ? 8 : 512
        let guest = try PagedGuest("dp_checksum", ring: ring, mode: mode, source: Self.pluginSource(),
                                   setup: PagingTests.checksum(PagingTests.dataStart, PagingTests.dataStart + length, stride: stride, writes: 3))
        #expect(guest.plugins?.plugins.map(\.id) == ["org.vmmkit.memory-fault"])
        let reasons = try guest.run()
        try #require(reasons == [.guestExit(code: 0)], "\(reasons)")
        #expect(guest.reported(0) == guest.expectedSum(from: PagingTests.dataStart, to: PagingTests.dataStart + length, stride: stride))
        #expect(guest.pager.statistics.pagesFetched == Int(length / 4096) + 3)
        for i in 0..<UInt64(3) {
            let page = PagingTests.writeStart + i * 4096
            #expect(try guest.vm.memory.read(page, as: UInt64.self) == page ^ 0x5a5a)
            #expect(try guest.vm.memory.read(page + 4088, as: UInt64.self) == guest.snapshotQword(page + 4088))
        }
    }

    @Test("a jump into a missing page and two vCPUs on the same pages, through the plugin")
    func jumpAndTwoVCPUs() throws {
        let stub = Payload.bytes("dp_stub")
        let jumper = try PagedGuest("dp_jump", ring: 3, mode: .blocking, source: Self.pluginSource(),
                                    patchSnapshot: { $0.replaceSubrange(0x20_0000..<(0x20_0000 + stub.count), with: stub) },
                                    setup: { regs, _ in regs.rdi = 0x20_0000 })
        #expect(try jumper.run() == [.guestExit(code: 0)])
        #expect(jumper.markers.all == [0x5eed])
        let pair = try PagedGuest("dp_checksum", ring: 3, vcpus: 2, mode: .blocking, source: Self.pluginSource(),
                                  setup: PagingTests.checksum(PagingTests.dataStart, PagingTests.dataStart + 0x4_0000, stride: 8, writes: 0))
        #expect(try pair.run() == [.guestExit(code: 0), .guestExit(code: 0)])
        let expected = pair.expectedSum(from: PagingTests.dataStart, to: PagingTests.dataStart + 0x4_0000, stride: 8)
        #expect(pair.reported(0) == expected && pair.reported(1) == expected)
        #expect(pair.pager.statistics.pagesFetched == 64)
    }

    @Test("a page outside the plugin's snapshot ends in the stuck diagnosis naming the page")
    func pageOutsideSnapshot() throws {
        // The plugin's snapshot covers only the first MiB: the guest reads at 1 MiB.
        let guest = try PagedGuest("dp_checksum", ring: 3, mode: .blocking,
                                   source: { guest in
                                       let short = guest.snapshotPath + ".short"
                                       truncate(short, 0)
                                       let f = fopen(short, "w")!
                                       fwrite(guest.snapshot, 1, 1 << 20, f)
                                       fclose(f)
                                       return try Self.pluginSource(config: "snapshot=\(short)")(guest)
                                   },
                                   setup: PagingTests.checksum(PagingTests.dataStart, PagingTests.dataStart + 0x1000, stride: 8, writes: 0))
        defer { unlink(guest.snapshotPath + ".short") }
        let reasons = try guest.run()
        let cause = "memory-fault plugin (org.vmmkit.memory-fault) could not deliver guest-physical page 0x100000 after 3 tries: no memory-fault plugin delivered guest-physical page 0x100000"
        #expect(reasons == [.stuck("vCPU 0 at RIP 0x10007: " + cause)] || reasons == [.stuck("vCPU 0 (blocked in the kernel on the page): " + cause)])
    }

    @Test("bad plugin config is refused with the plugin named and the reason")
    func badConfig() throws {
        let guest = try TestGuest("hlt")
        precondition(PluginFixtures.built)
        let host = PluginHost(vm: guest.vm, dispatcher: guest.dispatcher)
        defer { host.close() }
        let missing = pluginError { () throws(PluginError) in try host.load("MemoryFault", config: "") }
        #expect(missing?.description.contains("config needs snapshot=<path of a guest-memory snapshot file> or fill=zero (one of them)") == true)
        let unreadable = pluginError { () throws(PluginError) in try host.load("MemoryFault", config: "snapshot=/nonexistent/guest.mem") }
        #expect(unreadable?.description.contains("cannot open snapshot /nonexistent/guest.mem: No such file or directory") == true)

        // Not a file of pages: a FIFO (before, init blocked in open until a writer came,
        // and the init budget ended the VMM), a device, a file shorter than a page (which
        // registered a handler for the whole space that filled nothing).
        var template = Array("/tmp/vmmkit-mf-config-XXXXXX".utf8CString)
        let dir = try #require(template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }.map { String(cString: $0) })
        let fifo = dir + "/fifo", short = dir + "/short.mem"
        defer { unlink(fifo); unlink(short); rmdir(dir) }
        #expect(mkfifo(fifo, 0o600) == 0)
        let writer = open(fifo, O_RDWR | O_NONBLOCK) // held open: even a blocking open returns
        defer { close(writer) }
        let fd = open(short, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        #expect(write(fd, [UInt8](repeating: 7, count: 100), 100) == 100)
        close(fd)
        for (path, reason) in [(fifo, "is not a regular file"), ("/dev/null", "is not a regular file"),
                               (short, "holds no whole page (100 bytes; pages are 4096)")] {
            let e = pluginError { () throws(PluginError) in try host.load("MemoryFault", config: "snapshot=" + path) }
            #expect(e?.description.contains("snapshot \(path) \(reason)") == true, "\(path): \(String(describing: e))")
        }
    }
}
