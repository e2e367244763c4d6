import Glibc
import Testing
@testable import VMMKit

/// The plugin watchdog (a handler over its budget is named, with its vCPU and exit) and
/// host services refused from the wrong thread or after destroy(), with the C fixture
/// Tests/PluginFixtures/guard_plugin.c.
@Suite("Plugin watchdog and refused host services", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct PluginWatchdogTests {
    /// A function the Guard fixture exports (the library is already loaded by the host).
    static func symbol<T>(_ name: String, as type: T.Type) -> T {
        let handle = dlopen(PluginFixtures.fixture("Guard"), RTLD_NOW | RTLD_NOLOAD)
        let sym = dlsym(handle, name)
        precondition(sym != nil, "libGuard.so does not export \(name)")
        return unsafeBitCast(sym, to: type)
    }

    /// Polls `condition` (it is the condition the test needs, not a time); gives up after
    /// 60 s so that a broken watchdog fails instead of hanging the suite.
    static func waitFor(_ condition: () -> Bool) -> Bool {
        for _ in 0..<60_000 {
            if condition() { return true }
            sleepMilliseconds(1)
        }
        return condition()
    }

    @Test("a handler over its budget is reported once, naming plugin, handler, vCPU and exit; the VM stops with it")
    func overrun() throws {
        let (guest, host) = try PluginFixtures.guest("hlt")
        defer { host.close() }
        // mov $0x531,%dx; in %dx,%al; hlt
        try guest.vm.memory.writeBytes(GuestLayout.codeStart, [0x66, 0xba, 0x31, 0x05, 0xec, 0xf4])
        try host.load(PluginFixtures.fixture("Guard"))
        let reports = Recorder<PluginOverrun>()
        let stop = host.defaultOverrunAction()
        // The stop is requested before the report is recorded: the test releases the
        // handler once it sees the report, and a vCPU released before the stop runs on
        // to its hlt (CI39, under ASan beside two other runs: .halted).
        host.onHandlerOverrun = { stop($0); reports.append($0) }
        try host.setHandlerBudget(0.1)
        #expect(host.handlerBudget == 0.1)
        try guest.vcpu.start(guest.dispatcher)
        #expect(Self.waitFor { !reports.all.isEmpty })
        let inFlight = host.handlerCallsInProgress()
        Self.symbol("guard_fixture_release", as: (@convention(c) () -> Void).self)()
        let reason = guest.vcpu.join()
        let r = try #require(reports.all.first)
        #expect(reports.all.count == 1)
        #expect(r.handler == "org.vmmkit.test.guard 'hang' (\(PluginFixtures.fixture("Guard")))")
        #expect(r.vcpuID == 0)
        #expect(r.exit == "pio in port 0x531 size 1")
        #expect(r.seconds >= 0.1 && r.budget == 0.1)
        #expect(r.description.contains("cannot be cancelled"))
        #expect(inFlight.count == 1 && inFlight.first?.exit == "pio in port 0x531 size 1")
        #expect(reason == .handlerFailed(r.description))
        #expect(host.handlerCallsInProgress().isEmpty)
    }

    @Test("without a budget, or under it, nothing is reported; a bad budget is refused")
    func underBudget() throws {
        let (guest, host) = try PluginFixtures.guest("hlt")
        defer { host.close() }
        // mov $0x533,%dx; in %dx,%al; hlt  (a handler that returns at once)
        try guest.vm.memory.writeBytes(GuestLayout.codeStart, [0x66, 0xba, 0x33, 0x05, 0xec, 0xf4])
        try host.load(PluginFixtures.fixture("Guard"))
        let reports = Recorder<PluginOverrun>()
        host.onHandlerOverrun = { reports.append($0) }
        try host.setHandlerBudget(30)
        #expect(try guest.run() == .halted)
        #expect(reports.all.isEmpty)
        for bad in [0, -1, Double.infinity, Double.nan, 1e300] {
            #expect(throws: VMMError.self) { try host.setHandlerBudget(bad) }
        }
        try host.setHandlerBudget(nil)
        #expect(host.handlerBudget == nil)
    }

    @Test("register_handler from a vCPU thread or another thread during init is -EPERM; every service after destroy is -ESHUTDOWN")
    func refusedServices() throws {
        let (guest, host) = try PluginFixtures.guest("hlt")
        // mov $0x533,%dx; in %dx,%al; mov %al,0x20000; hlt
        try guest.vm.memory.writeBytes(GuestLayout.codeStart,
                                       [0x66, 0xba, 0x33, 0x05, 0xec, 0x88, 0x04, 0x25, 0x00, 0x00, 0x02, 0x00, 0xf4])
        try host.load(PluginFixtures.fixture("Guard"))
        #expect(Self.symbol("guard_fixture_init_thread_result", as: (@convention(c) () -> Int32).self)() == -EPERM)
        #expect(try guest.run() == .halted)
        #expect(try guest.vm.memory.read(0x20000, as: UInt8.self) == UInt8(EPERM))
        host.close()
        var codes = [Int32](repeating: 99, count: 8)
        Self.symbol("guard_fixture_after_destroy", as: (@convention(c) (UnsafeMutablePointer<Int32>) -> Void).self)(&codes)
        let shut = -ESHUTDOWN
        #expect(codes == [shut, shut, shut, shut, 0, shut, shut, shut])
        #expect(guest.vm.stopReason == nil) // request_stop after destroy did nothing
    }
}
