import Glibc
import Testing
@testable import VMMKit

/// The host extensions coalesced_mmio/1 and ioeventfd/1, used by a C plugin built with
/// plain cc (Tests/PluginFixtures/fastpath_plugin.c), on real KVM.
@Suite("Plugin host extensions: coalesced MMIO, ioeventfd, irqfd", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct PluginFastPathTests {
    static let plugin = PluginFixtures.fixture("FastPath")

    func host(_ guest: TestGuest) -> PluginHost {
        precondition(PluginFixtures.built, "scripts/build-plugins failed")
        return PluginHost(vm: guest.vm, dispatcher: guest.dispatcher)
    }

    @Test("ioeventfd/1: the plugin's notify hears doorbell writes that never reach the run loop")
    func doorbells() throws {
        let guest = try TestGuest("doorbell", ring: 3)
        let plugins = host(guest)
        defer { plugins.close() }
        try plugins.load(Self.plugin, config: "mode=doorbell")
        let exits = Recorder<UInt16>()
        try guest.dispatcher.registerPIO(port: 0xf4, owner: "test") { io, _ in exits.append(io.port); return .stop(.guestExit(code: 0)) }
        #expect(try guest.run() == .guestExit(code: 0))
        let m = guest.vm.memory
        // The notifier thread runs on its own; wait for it (a hang guard, not a bound).
        var waited = 0
        while try m.read(0x20100, as: UInt64.self) < 3 || m.read(0x20108, as: UInt64.self) < 2, waited < 30_000 {
            sleepMilliseconds(1)
            waited += 1
        }
        #expect(try m.read(0x20100, as: UInt64.self) == 3)
        #expect(try m.read(0x20108, as: UInt64.self) == 2)
        #expect(try m.read(0x20110, as: UInt64.self) == 1) // only 0x78 (no match) exited
        #expect(try m.read(0x20118, as: UInt64.self) == 0x78)
        #expect(guest.vcpu.exitCount == 2)
        #expect(exits.all == [0xf4])
    }

    @Test("coalesced_mmio/1: writes replay in order to the plugin's handler with far fewer exits")
    func coalesced() throws {
        let n = 2000
        let guest = try TestGuest("coalesced_writes", ring: 3)
        var regs = try guest.vcpu.registers()
        regs.rcx = UInt64(n)
        regs.rbx = TestGuest.mmioBase
        try guest.vcpu.setRegisters(regs)
        let plugins = host(guest)
        defer { plugins.close() }
        try plugins.load(Self.plugin, config: "mode=coalesce")
        try guest.dispatcher.registerPIO(port: 0xf4, owner: "test") { _, _ in .stop(.guestExit(code: 0)) }
        #expect(try guest.run() == .guestExit(code: 0))
        #expect(try guest.vm.memory.read(0x20120, as: UInt64.self) == UInt64(n))
        #expect(try guest.vm.memory.readBytes(0x30000, count: n) == (0..<n).map(FastPathTests.pattern))
        #expect(guest.vcpu.exitCount <= UInt64(n / 100))
    }

    @Test("coalesced_mmio/1 refuses a range none of the plugin's handlers covers; nothing stays registered")
    func uncovered() throws {
        let guest = try TestGuest("hlt")
        let plugins = host(guest)
        defer { plugins.close() }
        let error = pluginError { () throws(PluginError) in _ = try plugins.load(Self.plugin, config: "mode=uncovered") }
        #expect(error?.description == "plugin 'org.vmmkit.test.fastpath' (\(Self.plugin)): init failed: 'org.vmmkit.test.fastpath' "
            + "(\(Self.plugin)): coalesced_mmio add: mmio range 0xe0000000+1 is not covered by one of this plugin's handlers")
        #expect(guest.vm.coalescedRing.zones.isEmpty)
        // The staged handler was discarded too: the range is free.
        try guest.dispatcher.registerMMIO(address: TestGuest.mmioBase, length: 1, owner: "test") { _, _ in .handled }
    }

    @Test("ioeventfd/1 refuses a doorbell on a port another owner holds exclusively, naming the owner")
    func doorbellOverExclusiveRange() throws {
        let guest = try TestGuest("hlt")
        try guest.dispatcher.registerPIO(port: 0x32, count: 1, owner: "debug port") { _, _ in .handled }
        let plugins = host(guest)
        defer { plugins.close() }
        // mode=doorbell rings on 4-byte writes to port 0x30: 0x30..0x33 holds 0x32.
        let error = pluginError { () throws(PluginError) in _ = try plugins.load(Self.plugin, config: "mode=doorbell") }
        #expect(error?.description == "plugin 'org.vmmkit.test.fastpath' (\(Self.plugin)): init failed: 'org.vmmkit.test.fastpath' "
            + "(\(Self.plugin)): ioeventfd add: pio 0x30+4 overlaps [0x32..<0x33], owned exclusively by debug port")
    }

    @Test("a plugin claiming exclusively a port another plugin's doorbell holds is refused, naming the doorbell")
    func exclusiveRangeOverDoorbell() throws {
        let guest = try TestGuest("hlt")
        let plugins = host(guest)
        defer { plugins.close() }
        try plugins.load(Self.plugin, config: "mode=doorbell") // rings on port 0x30, 4 bytes
        // Before, the claim was accepted and the guest's writes to 0x32 never reached it.
        let null = PluginFixtures.fixture("Null")
        let error = pluginError { () throws(PluginError) in _ = try plugins.load(null, config: "port=0x32") }
        #expect(error?.description == "plugin 'org.vmmkit.bench.null' (\(null)): init failed: org.vmmkit.bench.null 'null' (\(null)): "
            + "pio range [0x32..<0x33] overlaps the ioeventfd doorbell at pio 0x30+4 of 'org.vmmkit.test.fastpath' "
            + "(\(Self.plugin)) (an exclusive range cannot be shared)")
        // A port beside the doorbell is free.
        try plugins.load(null, config: "port=0x34")
    }

    @Test("a typed hypercall after another plugin's doorbell on the hypercall port is refused, naming the doorbell (the kernel would have taken every call)")
    func hypercallOverDoorbell() throws {
        let guest = try TestGuest("hlt")
        let plugins = host(guest)
        defer { plugins.close() }
        try plugins.load(Self.plugin, config: "mode=bell-e4")
        let path = PluginFixtures.fixture("Hypercalls")
        let error = pluginError { () throws(PluginError) in _ = try plugins.load(path) }
        #expect(error?.description == "plugin 'org.vmmkit.test.hypercalls' (\(path)): init failed: hypercalls: "
            + "org.vmmkit.test.hypercalls (\(path)): hypercall 100 needs the hypercall port: VMMKit typed hypercalls: "
            + "pio range [0xe4..<0xe5] overlaps the ioeventfd doorbell at pio 0xe4+4 of 'org.vmmkit.test.fastpath' "
            + "(\(Self.plugin)) (an exclusive range cannot be shared)")
    }

    @Test("ioeventfd/1 add_irqfd: a plugin raises IRQ 4 from its handler; the guest's 8259 handler runs")
    func irqfd() throws {
        let guest = try TestGuest("irq_wait", irqchip: true)
        let vm = guest.vm
        let dispatcher = ExitDispatcher()
        precondition(PluginFixtures.built)
        let plugins = PluginHost(vm: vm, dispatcher: dispatcher)
        defer { plugins.close() }
        try plugins.load(Self.plugin, config: "mode=irq")
        let vectors = Recorder<UInt32>()
        try dispatcher.registerPIO(port: 0x11, owner: "test") { io, _ in vectors.append(io.value); return .handled }
        try dispatcher.registerPIO(port: 0xf4, owner: "test") { io, _ in .stop(.guestExit(code: Int32(io.value))) }
        #expect(try vm.run(dispatcher) == [.guestExit(code: 0)])
        #expect(vectors.all == [0x24])
    }

    @Test("add_irqfd on a VM without an in-kernel irqchip is refused with ENOTSUP and says why")
    func irqfdWithoutIRQChip() throws {
        let guest = try TestGuest("hlt")
        let plugins = host(guest)
        defer { plugins.close() }
        let error = pluginError { () throws(PluginError) in _ = try plugins.load(Self.plugin, config: "mode=irq") }
        #expect(error?.description == "plugin 'org.vmmkit.test.fastpath' (\(Self.plugin)): init failed: 'org.vmmkit.test.fastpath' "
            + "(\(Self.plugin)): add_irqfd: the kernel lacks an in-kernel irqchip (call createIRQChip() first), needed for irqfd on GSI 4")
    }

    @Test("plugins loaded and closed 20 times leave no fd or mapping behind (eventfds, notifier, irqfds)")
    func noLeaks() throws {
        func once() throws {
            let guest = try TestGuest("doorbell", ring: 3)
            let plugins = host(guest)
            try plugins.load(Self.plugin, config: "mode=doorbell")
            try guest.dispatcher.registerPIO(port: 0xf4, owner: "test") { _, _ in .stop(.guestExit(code: 0)) }
            _ = try guest.run()
            plugins.close()
        }
        try once()
        let fds = openFDs(), maps = mappingCount()
        for _ in 0..<20 { try once() }
        #expect(fdsOpened(since: fds) == [])
        #expect(mappingsUnreliable || mappingCount() <= maps) // fewer: a glibc arena heap of an earlier test's threads released; more: a leak
    }
}
