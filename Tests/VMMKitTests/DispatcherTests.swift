import Testing
@testable import VMMKit

/// Dispatch is a pure function of (exit, tables): fed synthetic exits here, no KVM_RUN.
/// A real (idle) vCPU is still needed because defaults read its RIP.
@Suite("Exit dispatcher with synthetic exits", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct DispatcherTests {
    let guest: TestGuest
    // Synthetic exits need a data buffer that outlives them; one for the whole suite.
    nonisolated(unsafe) static let shared = UnsafeMutableRawBufferPointer.allocate(byteCount: 16, alignment: 8)
    var buffer: UnsafeMutableRawBufferPointer { Self.shared }

    init() throws { guest = try TestGuest("hlt") }

    func pio(_ port: UInt16, write: Bool = true) -> VMExit {
        .io(PIOAccess(port: port, size: 1, count: 1, isWrite: write, data: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<1])))
    }

    func outcome(_ d: ExitDispatcher, _ exit: VMExit) -> String {
        var e = exit
        switch d.dispatch(&e, on: guest.vcpu) {
        case .handled: return "handled"
        case .notMine: return "notMine"
        case .backingReplaced: return "backingReplaced"
        case let .stop(r): return "stop: \(r)"
        case let .fail(m): return "fail: \(m)"
        }
    }

    @Test("handlers run in priority order; notMine falls through to the next, then to kind handlers")
    func priorityOrder() throws {
        let d = ExitDispatcher()
        let calls = Recorder<String>()
        try d.registerPIO(port: 0x60, count: 4, priority: 1, exclusive: false, owner: "low") { _, _ in calls.append("low"); return .handled }
        try d.registerPIO(port: 0x60, count: 1, priority: 9, exclusive: false, owner: "high") { io, _ in
            calls.append("high"); return io.value == 1 ? .handled : .notMine
        }
        try d.register(.io, owner: "any-io") { _, _ in calls.append("kind"); return .handled }
        buffer[0] = 1
        #expect(outcome(d, pio(0x60)) == "handled")
        buffer[0] = 2
        #expect(outcome(d, pio(0x60)) == "handled")
        #expect(outcome(d, pio(0x63)) == "handled")
        #expect(outcome(d, pio(0x64)) == "handled")
        #expect(calls.all == ["high", "high", "low", "low", "kind"])
    }

    @Test("an exclusive overlap is refused, naming both owners and ranges")
    func exclusiveOverlap() throws {
        let d = ExitDispatcher()
        try d.registerMMIO(address: 0x1000, length: 0x100, owner: "uart0") { _, _ in .handled }
        #expect {
            try d.registerMMIO(address: 0x10f0, length: 0x20, exclusive: false, owner: "rtc") { _, _ in .handled }
        } throws: {
            ($0 as? VMMError)?.description
                == "rtc: MMIO range [0x10f0..<0x1110] overlaps [0x1000..<0x1100] owned by uart0 (an exclusive range cannot be shared)"
        }
        try d.registerMMIO(address: 0x1100, length: 0x10, owner: "adjacent") { _, _ in .handled }
        #expect {
            try d.registerPIO(port: 0xfff0, count: 0x20, owner: "wide") { _, _ in .handled }
        } throws: { ($0 as? VMMError)?.description == "wide: port range 0xfff0+32 runs past port 0xffff" }
    }

    @Test("pioOwner and mmioOwner name who holds any part of a range, for a VMM that fills in devices around plugins")
    func owners() throws {
        let d = ExitDispatcher()
        try d.registerMMIO(address: 0xfed0_0100, length: 0x10, owner: "plugin") { _, _ in .handled }
        try d.registerPIO(port: 0x70, count: 2, owner: "rtc") { _, _ in .handled }
        #expect(d.mmioOwner(address: 0xfed0_0000, length: 0x400) == "plugin")
        #expect(d.mmioOwner(address: 0xfed0_0000, length: 0x100) == nil, "just before")
        #expect(d.mmioOwner(address: 0xfed0_0110, length: 0x10) == nil, "just after")
        #expect(d.mmioOwner(address: 0xfed0_0100, length: 0) == nil && d.mmioOwner(address: ~0, length: 2) == nil, "empty, wrapping")
        #expect(d.pioOwner(port: 0x71) == "rtc" && d.pioOwner(port: 0x72) == nil)
    }

    @Test("defaults: an unclaimed read, write, MSR or memory fault stops with a diagnostic")
    func defaults() throws {
        let d = ExitDispatcher()
        let rip = "vCPU 0 at RIP 0x10000"
        #expect(outcome(d, pio(0x70, write: false)) == "stop: unhandled PIO read (1 byte x1) at port 0x70, \(rip)")
        #expect(outcome(d, .mmio(MMIOAccess(address: 0xfee0_0000, length: 4, isWrite: true, data: 7)))
            == "stop: unhandled MMIO write of 0x7 (4 bytes) at guest-physical 0xfee00000, \(rip)")
        #expect(outcome(d, .rdmsr(MSRAccess(index: 0x1b, reason: 2, data: 0))) == "stop: unhandled RDMSR of MSR 0x1b, \(rip)")
        #expect(outcome(d, .memoryFault(MemoryFault(errno: 14, gpa: 0x5000, size: 0x1000, flags: 0)))
            == "stop: unresolved memory fault at guest-physical 0x5000 (4096 bytes, flags 0x0), EFAULT (errno 14), \(rip)")
        #expect(outcome(d, .unknown(reason: 77)) == "stop: unknown exit reason 77, \(rip)")
        #expect(outcome(d, .hlt) == "stop: halted")
        #expect(outcome(d, .interrupted) == "handled")
    }

    @Test("an MMIO read handler's data is what complete() writes back")
    func mmioReadCompletion() throws {
        let d = ExitDispatcher()
        try d.registerMMIO(address: 0x2000, length: 8, owner: "dev") { a, _ in a.data = 0xabcd; return .handled }
        var exit = VMExit.mmio(MMIOAccess(address: 0x2004, length: 2, isWrite: false, data: 0))
        guard case .handled = d.dispatch(&exit, on: guest.vcpu), case let .mmio(a) = exit else {
            Issue.record("expected a handled MMIO exit"); return
        }
        #expect(a.data == 0xabcd)
    }
}
