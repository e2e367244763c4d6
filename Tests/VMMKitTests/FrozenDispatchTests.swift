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

    /// The frozen tables find a segment in their own flat copy: with few ranges and many,
    /// at every range edge, they must agree with the live tables.
    @Test("segment lookup, few and many ranges, at every range edge: the same before and after freeze",
          arguments: [2, 3, 4, 5, 9])
    func segmentEdges(ranges: Int) throws {
        let guest = try TestGuest("hlt")
        let d = ExitDispatcher()
        // Ranges of 4 ports with gaps of 2: [0x100 + 6i, 0x104 + 6i).
        for i in 0..<ranges {
            try d.registerPIO(port: UInt16(0x100 + 6 * i), count: 4, owner: "r\(i)") { _, _ in .stop(.guestExit(code: Int32(i))) }
            try d.registerMMIO(address: 0xd000_0000 + UInt64(0x100 * i), length: 0x80, owner: "m\(i)") { _, _ in
                .stop(.guestExit(code: Int32(100 + i)))
            }
        }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1, alignment: 1)
        defer { buffer.deallocate() }
        func route() -> [String] {
            var out: [String] = []
            for port in 0xfe..<(0x102 + 6 * ranges) {
                var e = VMExit.io(.synthetic(port: UInt16(port), size: 1, isWrite: true, data: buffer))
                out.append("\(d.dispatch(&e, on: guest.vcpu))")
            }
            for i in 0...ranges {
                for offset: UInt64 in [0, 0x7f, 0x80, 0xff] {
                    var m = VMExit.mmio(MMIOAccess(address: 0xd000_0000 + UInt64(0x100 * i) + offset, length: 1, isWrite: true, data: 0))
                    out.append("\(d.dispatch(&m, on: guest.vcpu))")
                }
            }
            return out
        }
        let live = route()
        d.freeze()
        #expect(route() == live)
        #expect(live.filter { !$0.contains("unhandled") }.count == 4 * ranges + 2 * ranges)
    }

    /// A HLT takes the run loop's own path (FrozenTables.dispatchHalt): its handlers in
    /// priority order with `.notMine` falling through, re-entry after `.handled`, and a
    /// handler's stop or failure ending the run, as through the live tables.
    /// The device's answer to the `n`th HLT: handled twice (once as `.backingReplaced`,
    /// which means handled for a HLT), then the run's `ending`.
    static func haltAnswer(_ n: Int, _ ending: String) -> ExitVerdict {
        switch (n, ending) {
        case (1, _): .handled
        case (2, _): .backingReplaced
        case (_, "stop"): .stop(.guestExit(code: 9))
        case (_, "fail"): .fail("device failed on the third HLT")
        default: .notMine
        }
    }

    @Test("HLT handlers on a running vCPU: notMine falls through, handled re-enters, stop and fail end the run")
    func haltHandlers() throws {
        // hlt; movb $0x5a,0x20000; hlt; movb $0x5b,0x20001; hlt; movb $0x5c,0x20002; hlt
        let code: [UInt8] = [0xf4, 0xc6, 0x04, 0x25, 0x00, 0x00, 0x02, 0x00, 0x5a,
                             0xf4, 0xc6, 0x04, 0x25, 0x01, 0x00, 0x02, 0x00, 0x5b,
                             0xf4, 0xc6, 0x04, 0x25, 0x02, 0x00, 0x02, 0x00, 0x5c, 0xf4]
        for ending in ["stop", "fail", "default"] {
            let guest = try TestGuest("hlt")
            try guest.vm.memory.writeBytes(GuestLayout.codeStart, code)
            let calls = Recorder<String>()
            try guest.dispatcher.register(.hlt, priority: 9, owner: "watcher") { exit, _ in
                guard case .hlt = exit else { return .fail("watcher saw \(exit)") }
                calls.append("watcher"); return .notMine
            }
            try guest.dispatcher.register(.hlt, priority: 1, owner: "device") { _, _ in
                calls.append("device")
                return Self.haltAnswer(calls.all.count / 2, ending)
            }
            let reason = try guest.run()
            #expect(calls.all == Array(repeating: ["watcher", "device"], count: 3).flatMap { $0 }, "\(ending)")
            #expect(try guest.vm.memory.readBytes(TestGuest.scratch, count: 3) == [0x5a, 0x5b, 0], "\(ending)")
            switch ending {
            case "stop": #expect(reason == .guestExit(code: 9))
            case "fail": #expect(reason == .handlerFailed("device failed on the third HLT"))
            default: #expect(reason == .halted)
            }
        }
    }

    /// A VM whose one HLT handler is a closure runs the hot loop's `ClosureHalt`: the
    /// closure is called with no kind-table lookup, must still see `.hlt` after a PIO
    /// exit left `.io` in the loop's exit, and its verdicts mean what they mean through
    /// the table (`.notMine` from the only handler: nobody claimed it, `.halted`).
    @Test("one HLT handler, a closure: it sees .hlt after a PIO exit; handled re-enters, stop and fail end the run, notMine halts",
          arguments: ["stop", "fail", "default"])
    func oneClosureHaltHandler(ending: String) throws {
        // mov dx, 0x61; mov al, 2; out dx, al; hlt; movb $0x5a,0x20000; out dx, al; hlt;
        // movb $0x5b,0x20001; hlt; movb $0x5c,0x20002; hlt
        let code: [UInt8] = [0x66, 0xba, 0x61, 0x00, 0xb0, 0x02, 0xee, 0xf4,
                             0xc6, 0x04, 0x25, 0x00, 0x00, 0x02, 0x00, 0x5a, 0xee, 0xf4,
                             0xc6, 0x04, 0x25, 0x01, 0x00, 0x02, 0x00, 0x5b, 0xf4,
                             0xc6, 0x04, 0x25, 0x02, 0x00, 0x02, 0x00, 0x5c, 0xf4]
        let guest = try TestGuest("hlt")
        try guest.vm.memory.writeBytes(GuestLayout.codeStart, code)
        let calls = Recorder<String>()
        // The port's range handler declines, so the exit reaches the kind handler as `.io`.
        try guest.dispatcher.registerPIO(port: 0x61, owner: "port") { _, _ in .notMine }
        try guest.dispatcher.register(.io, owner: "any port") { _, _ in calls.append("port"); return .handled }
        try guest.dispatcher.register(.hlt, owner: "device") { exit, _ in
            guard case .hlt = exit else { return .fail("device saw \(exit)") }
            calls.append("hlt")
            return Self.haltAnswer(calls.all.filter { $0 == "hlt" }.count, ending)
        }
        let reason = try guest.run()
        #expect(calls.all == ["port", "hlt", "port", "hlt", "hlt"])
        #expect(try guest.vm.memory.readBytes(TestGuest.scratch, count: 3) == [0x5a, 0x5b, 0])
        switch ending {
        case "stop": #expect(reason == .guestExit(code: 9))
        case "fail": #expect(reason == .handlerFailed("device failed on the third HLT"))
        default: #expect(reason == .halted)
        }
    }

    /// The run loop's hot path calls a segment's only handler with no loop around it
    /// (FrozenTables.dispatchHot): `.notMine` must still reach the kind handlers, IN and
    /// MMIO-read data must reach the guest, and a stop must end the run.
    @Test("one handler per range on a running vCPU: notMine reaches the kind handlers, data reaches the guest, stop ends the run")
    func singleHandlerRanges() throws {
        let code: [UInt8] = [
            0x66, 0xba, 0x61, 0x00, // mov dx, 0x61
            0xb0, 0x02, 0xee, // mov al, 2; out dx, al (the port's handler declines)
            0xec, // in al, dx (the port's handler answers 0x33)
            0x88, 0x04, 0x25, 0x00, 0x00, 0x02, 0x00, // mov [0x20000], al
            0xbb, 0x00, 0x00, 0x00, 0xd0, // mov ebx, 0xd0000000
            0x8b, 0x03, // mov eax, [rbx] (the page's handler declines, the kind handler answers)
            0x89, 0x04, 0x25, 0x04, 0x00, 0x02, 0x00, // mov [0x20004], eax
            0x8b, 0x43, 0x08, // mov eax, [rbx + 8] (the page's handler answers 0x0badf00d)
            0x89, 0x04, 0x25, 0x08, 0x00, 0x02, 0x00, // mov [0x20008], eax
            0xb0, 0x09, 0xee, // mov al, 9; out dx, al (the port's handler stops the run)
            0xf4, // hlt (not reached)
        ]
        let guest = try TestGuest("hlt")
        try guest.vm.memory.writeBytes(GuestLayout.codeStart, code)
        let calls = Recorder<String>()
        try guest.dispatcher.registerPIO(port: 0x61, owner: "port") { io, _ in
            guard io.isWrite else { calls.append("port in"); io.value = 0x33; return .handled }
            calls.append("port out \(io.value)")
            return io.value == 9 ? .stop(.guestExit(code: 9)) : .notMine
        }
        try guest.dispatcher.registerMMIO(address: 0xd000_0000, length: 16, owner: "page") { access, _ in
            calls.append("page \(access.address & 0xff)")
            guard access.address == 0xd000_0008 else { return .notMine }
            access.data = 0x0bad_f00d
            return .handled
        }
        try guest.dispatcher.register(.io, owner: "any port") { _, _ in calls.append("any port"); return .handled }
        try guest.dispatcher.register(.mmio, owner: "any page") { exit, _ in
            guard case var .mmio(access) = exit else { return .fail("any page saw \(exit)") }
            calls.append("any page")
            access.data = 0x1122_3344
            exit = .mmio(access)
            return .handled
        }
        let reason = try guest.run()
        #expect(reason == .guestExit(code: 9))
        #expect(calls.all == ["port out 2", "any port", "port in", "page 0", "any page", "page 8", "port out 9"])
        #expect(try guest.vm.memory.readBytes(TestGuest.scratch, count: 12)
            == [0x33, 0, 0, 0, 0x44, 0x33, 0x22, 0x11, 0x0d, 0xf0, 0xad, 0x0b])
    }

    /// With no range handler at all, each frozen table holds only a placeholder segment
    /// (FrozenTables.Table: the scan tests for its end after the first segment): PIO and
    /// MMIO exits must still reach the kind handlers, with their data.
    @Test("no range handlers at all: PIO and MMIO exits on a running vCPU reach the kind handlers, data reaches the guest")
    func noRangeHandlers() throws {
        let code: [UInt8] = [
            0x66, 0xba, 0x61, 0x00, // mov dx, 0x61
            0xb0, 0x02, 0xee, // mov al, 2; out dx, al
            0xec, // in al, dx (the kind handler answers 0x33)
            0x88, 0x04, 0x25, 0x00, 0x00, 0x02, 0x00, // mov [0x20000], al
            0xbb, 0x00, 0x00, 0x00, 0xd0, // mov ebx, 0xd0000000
            0x8b, 0x03, // mov eax, [rbx] (the kind handler answers 0x11223344)
            0x89, 0x04, 0x25, 0x04, 0x00, 0x02, 0x00, // mov [0x20004], eax
            0xb0, 0x09, 0xee, // mov al, 9; out dx, al (the kind handler stops the run)
            0xf4, // hlt (not reached)
        ]
        let guest = try TestGuest("hlt")
        try guest.vm.memory.writeBytes(GuestLayout.codeStart, code)
        let calls = Recorder<String>()
        try guest.dispatcher.register(.io, owner: "any port") { exit, _ in
            guard case let .io(io) = exit else { return .fail("any port saw \(exit)") }
            guard io.isWrite else { calls.append("in \(hex(io.port))"); io.value = 0x33; return .handled }
            calls.append("out \(hex(io.port)) \(io.value)")
            return io.value == 9 ? .stop(.guestExit(code: 9)) : .handled
        }
        try guest.dispatcher.register(.mmio, owner: "any page") { exit, _ in
            guard case var .mmio(access) = exit else { return .fail("any page saw \(exit)") }
            calls.append("mmio \(access.isWrite ? "write" : "read") \(hex(access.address))")
            access.data = 0x1122_3344
            exit = .mmio(access)
            return .handled
        }
        #expect(try guest.run() == .guestExit(code: 9))
        #expect(calls.all == ["out 0x61 2", "in 0x61", "mmio read 0xd0000000", "out 0x61 9"])
        #expect(try guest.vm.memory.readBytes(TestGuest.scratch, count: 8) == [0x33, 0, 0, 0, 0x44, 0x33, 0x22, 0x11])
    }
}
