import Glibc
import Testing
@testable import VMMKit

/// Which RAM a VMM has to demand-page through user space: only what a memory-fault
/// plugin fills with more than zeros (VMM_HANDLER_ZERO_FILL, ABI 1.2).
@Suite("Page-source ranges of memory-fault plugins (detached VM)")
struct ZeroFillTests {
    @Test("fill=zero leaves nothing to page; a snapshot plugin's range and a whole-space handler are paged")
    func pageSourceRanges() throws {
        precondition(PluginFixtures.built, "scripts/build-plugins failed")
        let path = "/tmp/vmmkit-zero-fill-\(getpid()).mem"
        let f = fopen(path, "w")!
        fwrite([UInt8](repeating: 1, count: 0x2800), 1, 0x2800, f)
        fclose(f)
        defer { unlink(path) }
        let vm = VirtualMachine.detached()
        defer { vm.close() }
        let host = PluginHost(vm: vm, dispatcher: ExitDispatcher())
        defer { host.close() }
        try host.load("MemoryFault", config: "fill=zero,priority=-1000")
        #expect(host.pageSourceRanges == [])
        #expect(host.plugins[0].handlers == ["memory_fault [0x0..<0xffffffffffffffff] priority -1000 zero-fill any-thread"])
        try host.load("MemoryFault", config: "snapshot=\(path),base=0x400000")
        try host.load("MemoryFault", config: "snapshot=\(path),base=0x401000")
        #expect(host.pageSourceRanges == [0x40_0000..<0x40_3000], "page-aligned, overlapping ranges merged")
        try host.load(PluginFixtures.fixture("FaultProbe"), config: "trace=0x1000")
        #expect(host.pageSourceRanges == [0..<UInt64.max])
    }

    @Test("VMM_HANDLER_ZERO_FILL and VMM_HANDLER_ANY_THREAD are refused on other classes, unknown flag bits too")
    func flagRefusals() throws {
        precondition(PluginFixtures.built, "scripts/build-plugins failed")
        let vm = VirtualMachine.detached()
        defer { vm.close() }
        let host = PluginHost(vm: vm, dispatcher: ExitDispatcher())
        defer { host.close() }
        let path = PluginFixtures.fixture("FaultProbe")
        let owner = "org.vmmkit.test.fault-probe 'range' (\(path))"
        for flags in [2, 4] {
            let refused = pluginError { () throws(PluginError) in _ = try host.load(path, config: "trace=0x1000,class=3,base=0x10,length=1,flags=\(flags)") }
            #expect(refused?.description.hasSuffix("\(owner): VMM_HANDLER_ZERO_FILL and VMM_HANDLER_ANY_THREAD are only for memory-fault handlers") == true, "\(String(describing: refused))")
        }
        let unknown = pluginError { () throws(PluginError) in _ = try host.load(path, config: "trace=0x1000,length=1,flags=8") }
        #expect(unknown?.description.hasSuffix("\(owner): unknown handler flags 0x8") == true, "\(String(describing: unknown))")
        let both = try host.load(path, config: "trace=0x1000,flags=6")
        #expect(both.handlers == ["memory_fault priority 0 zero-fill any-thread"])
    }

    @Test("a staged page is complete only when every byte was written, in any pieces; writes outside are refused")
    func staging() {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)
        defer { buffer.deallocate() }
        let staging = PageStaging(gpa: 0x7000, buffer: buffer)
        let bytes = [UInt8](repeating: 0xab, count: 4096)
        #expect(!staging.take(0x7000 + 4000, bytes, 97), "one byte past the page")
        #expect(!staging.take(UInt64.max, bytes, 2) && !staging.take(0x6fff, bytes, 2))
        #expect(staging.take(0x7000 + 3, bytes, 4093))
        #expect(!staging.complete)
        #expect(staging.take(0x7000, bytes, 3))
        #expect(staging.complete && buffer.allSatisfy { $0 == 0xab })
    }
}
