import Testing
@testable import VMMKit

/// Once a vCPU starts, dispatch reads a frozen copy of the range tables (FrozenTables);
/// it must route exactly as the live tables do.
@Suite("Frozen dispatch tables", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct FrozenDispatchTests {
    @Test("priority order, notMine fall-through, MMIO write-back and the default: the same before and after freeze")
    func sameRouting() throws {
        let guest = try TestGuest("hlt")
        let d = ExitDispatcher()
        let calls = Recorder<String>()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4, alignment: 4)
        defer { buffer.deallocate() }
        try d.registerPIO(port: 0x60, count: 4, priority: 1, exclusive: false, owner: "low") { _, _ in
            calls.append("low"); return .handled
        }
        try d.registerPIO(port: 0x61, priority: 9, exclusive: false, owner: "high") { io, _ in
            calls.append("high"); return io.value == 1 ? .handled : .notMine
        }
        try d.registerMMIO(address: 0xd000_0000, length: 8, owner: "mmio") { a, _ in
            calls.append("mmio"); a.data = 0x77; return .handled
        }
        func route() -> [String] {
            var out: [String] = []
            for value: UInt8 in [1, 2] {
                buffer[0] = value
                var e = VMExit.io(.synthetic(port: 0x61, size: 1, isWrite: true, data: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<1])))
                out.append("\(d.dispatch(&e, on: guest.vcpu))")
            }
            var m = VMExit.mmio(MMIOAccess(address: 0xd000_0004, length: 4, isWrite: false, data: 0))
            _ = d.dispatch(&m, on: guest.vcpu)
            if case let .mmio(a) = m { out.append("read \(a.data)") }
            var miss = VMExit.io(.synthetic(port: 0x70, size: 1, isWrite: true, data: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<1])))
            out.append("\(d.dispatch(&miss, on: guest.vcpu))")
            return out
        }
        let live = route()
        let liveCalls = calls.all
        d.freeze()
        #expect(d.isFrozen)
        let frozen = route()
        #expect(frozen == live)
        #expect(Array(calls.all.dropFirst(liveCalls.count)) == liveCalls)
        #expect(liveCalls == ["high", "high", "low", "mmio"])
        #expect(live[2] == "read 119")
    }
}
