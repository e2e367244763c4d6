import CKVM
import Testing
@testable import VMMKit

/// Every exit kind this host can produce, on real KVM, with the values checked.
@Suite("Exits on real KVM", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct ExitTests {
    @Test("out of 1, 2 and 4 bytes arrives with port, size and value")
    func pioOut() throws {
        let guest = try TestGuest("pio_out")
        let seen = Recorder<(Int, UInt32)>()
        try guest.dispatcher.registerPIO(port: 0x10, owner: "test") { io, _ in
            #expect(io.isWrite && io.count == 1)
            seen.append((io.size, io.value))
            return .handled
        }
        #expect(try guest.run() == .halted)
        #expect(seen.all.map(\.0) == [1, 2, 4])
        #expect(seen.all.map(\.1) == [0x41, 0x1234, 0xdead_beef])
    }

    @Test("in of 1, 2 and 4 bytes: the handler's values reach guest registers and memory")
    func pioIn() throws {
        let guest = try TestGuest("pio_in")
        let echoed = Recorder<UInt32>()
        try guest.dispatcher.registerPIO(port: 0x11, owner: "test") { io, _ in
            io.value = [1: 0xab, 2: 0xbeef, 4: 0x1234_5678][io.size]!
            return .handled
        }
        try guest.dispatcher.registerPIO(port: 0x12, owner: "test") { io, _ in echoed.append(io.value); return .handled }
        #expect(try guest.run() == .halted)
        let m = guest.vm.memory
        #expect(try m.read(TestGuest.scratch, as: UInt32.self) == 0xab)
        #expect(try m.read(TestGuest.scratch + 8, as: UInt32.self) == 0xbeef)
        #expect(try m.read(TestGuest.scratch + 0x10, as: UInt32.self) == 0x1234_5678)
        #expect(echoed.all == [0x1234_5678])
        #expect(try guest.vcpu.registers().rax == 0x1234_5678)
    }

    @Test("string PIO: rep outsb gives one exit per byte, rep insw one exit with count 3")
    func stringPIO() throws {
        let guest = try TestGuest("pio_string")
        let out = Recorder<(Int, UInt32)>()
        let inShapes = Recorder<(Int, Int)>()
        try guest.dispatcher.registerPIO(port: 0x13, owner: "test") { io, _ in
            for i in 0..<io.count { out.append((io.count, io.element(i))) }
            return .handled
        }
        try guest.dispatcher.registerPIO(port: 0x14, owner: "test") { io, _ in
            inShapes.append((io.size, io.count))
            for i in 0..<io.count { io.setElement(i, UInt32(0x1111 * (i + 1))) }
            return .handled
        }
        #expect(try guest.run() == .halted)
        #expect(String(decoding: out.all.map { UInt8($0.1) }, as: UTF8.self) == "abc")
        #expect(inShapes.all.map(\.0).allSatisfy { $0 == 2 })
        #expect(inShapes.all.map(\.1).reduce(0, +) == 3)
        #expect(try guest.vm.memory.readBytes(TestGuest.scratch + 0x100, count: 6) == [0x11, 0x11, 0x22, 0x22, 0x33, 0x33])
    }

    @Test("MMIO writes and reads of 1, 2, 4 and 8 bytes; read values come back out of the guest")
    func mmio() throws {
        let guest = try TestGuest("mmio")
        let writes = Recorder<(UInt64, Int, UInt64)>()
        try guest.dispatcher.registerMMIO(address: TestGuest.mmioBase, length: 0x1000, owner: "test") { a, _ in
            if a.isWrite {
                writes.append((a.address - TestGuest.mmioBase, a.length, a.data))
            } else {
                a.data = [1: 0x9a, 2: 0xbcde, 4: 0x1357_9bdf, 8: 0x0246_8ace_1357_9bdf][a.length]!
            }
            return .handled
        }
        #expect(try guest.run() == .halted)
        let w = writes.all
        #expect(w.map(\.0) == [0, 2, 4, 8, 0x20])
        #expect(w.map(\.1) == [1, 2, 4, 8, 8])
        #expect(w.map(\.2) == [0x11, 0x2233, 0x4455_6677, 0x8899_aabb_ccdd_eeff, 0x0246_8ace_1357_9bdf])
        let m = guest.vm.memory
        #expect(try m.read(TestGuest.scratch, as: UInt64.self) == 0x9a)
        #expect(try m.read(TestGuest.scratch + 8, as: UInt64.self) == 0xbcde)
        #expect(try m.read(TestGuest.scratch + 0x10, as: UInt64.self) == 0x1357_9bdf)
        #expect(try m.read(TestGuest.scratch + 0x18, as: UInt64.self) == 0x0246_8ace_1357_9bdf)
    }

    @Test("HLT without an irqchip exits; the default stops the vCPU as halted")
    func hlt() throws {
        let guest = try TestGuest("hlt")
        let seen = Recorder<VMExitKind>()
        try guest.dispatcher.register(.hlt, owner: "test") { exit, _ in seen.append(exit.kind); return .notMine }
        #expect(try guest.run() == .halted)
        #expect(seen.all == [.hlt])
        #expect(try guest.vcpu.registers().rip == GuestLayout.codeStart + 1)
    }

    @Test("a triple fault (ud2 with no IDT) is reported as shutdown")
    func tripleFault() throws {
        let guest = try TestGuest("ud2")
        #expect(try guest.run() == .shutdown)
    }

    @Test("single-step with guest debug: one debug exit per instruction, pc advancing")
    func singleStep() throws {
        let guest = try TestGuest("single_step")
        try guest.vcpu.setGuestDebug(enabled: true, singleStep: true)
        let pcs = Recorder<UInt64>()
        // Stepping over HLT does not halt on this host (the step trap wins), so stepping
        // stops when RIP reaches the HLT and the guest then halts for real.
        try guest.dispatcher.register(.debug, owner: "test") { exit, vcpu in
            guard case let .debug(d) = exit else { return .notMine }
            #expect(d.exception == 1)
            #expect(d.dr6 & 0x4000 != 0) // BS: single-step trap
            pcs.append(d.pc)
            if pcs.all.count == 3 { try? vcpu.setGuestDebug(enabled: false) }
            return .handled
        }
        #expect(try guest.run() == .halted)
        let base = GuestLayout.codeStart
        #expect(pcs.all == [base + 1, base + 6, base + 9])
        #expect(try guest.vcpu.registers().rax == 3)
    }

    @Test("RDMSR/WRMSR exits with KVM_CAP_X86_USER_SPACE_MSR: the value reaches the guest")
    func msrExits() throws {
        let guest = try TestGuest("msr")
        try guest.vm.enableUserSpaceMSRExits()
        let written = Recorder<(UInt32, UInt64)>()
        try guest.dispatcher.register(.rdmsr, owner: "test") { exit, _ in
            guard case var .rdmsr(m) = exit, m.index == 0x4b56_4dff else { return .notMine }
            m.data = 0xfeed_face_cafe_f00d
            exit = .rdmsr(m)
            return .handled
        }
        try guest.dispatcher.register(.wrmsr, owner: "test") { exit, _ in
            guard case let .wrmsr(m) = exit else { return .notMine }
            written.append((m.index, m.data))
            return .handled
        }
        #expect(try guest.run() == .halted)
        #expect(try guest.vm.memory.read(TestGuest.scratch, as: UInt64.self) == 0xfeed_face_cafe_f00d)
        #expect(written.all.map(\.0) == [0x4b56_4dfe])
        #expect(written.all.map(\.1) == [0x5566_7788_1122_3344])
    }

    @Test("a jump into MMIO space is an internal error with its suberror")
    func jumpIntoMMIO() throws {
        let guest = try TestGuest("jump_mmio")
        let reason = try guest.run()
        guard case let .internalError(error, _) = reason else {
            Issue.record("expected an internal error, got \(reason)")
            return
        }
        #expect(error.suberror == 1)
        #expect(reason.description.contains("emulation failure"))
        // A fetch from MMIO yields no instruction bytes here (nothing could be read).
        #expect(error.instructionBytes.isEmpty)
        #expect(try guest.vcpu.registers().rip == TestGuest.mmioBase)
    }

    @Test("int3 and int n are internal errors on this host, reported, not hung", arguments: ["int3", "int_n"])
    func softwareInterrupts(payload: String) throws {
        let guest = try TestGuest(payload)
        let reason = try guest.run()
        guard case let .internalError(error, rip) = reason else {
            Issue.record("expected an internal error, got \(reason)")
            return
        }
        #expect(error.suberror == 1)
        #expect(rip == GuestLayout.codeStart)
        // The kernel hands over the bytes it could not emulate; they are the guest's.
        let expected: [UInt8] = payload == "int3" ? [0xcc] : [0xcd, 0x80]
        #expect(Array(error.instructionBytes.prefix(expected.count)) == expected)
        #expect(reason.description.contains("instruction bytes " + expected.map { String($0, radix: 16) }.joined(separator: " ")))
    }

    @Test("an unclaimed exit stops the vCPU with a diagnostic naming exit, port and RIP")
    func unclaimedExit() throws {
        let guest = try TestGuest("pio_out")
        let reason = try guest.run()
        #expect(reason == .unhandled("unhandled PIO write of 0x41 (1 byte x1) at port 0x10, vCPU 0 at RIP 0x10007"))
    }

    @Test("real mode: a flat 16-bit payload runs")
    func realMode() throws {
        let kvm = try KVM.open()
        let vm = try kvm.createVM()
        defer { vm.close() }
        try vm.memory.addRegion(name: "low", guestAddress: 0, size: 0x100000)
        try vm.memory.writeBytes(0x7c00, Payload.bytes("real_hello"))
        let vcpu = try vm.createVCPU()
        try vcpu.setupRealMode(segment: 0x07c0, offset: 0)
        let dispatcher = ExitDispatcher()
        let text = Recorder<UInt8>()
        try dispatcher.registerPIO(port: 0x10, owner: "test") { io, _ in text.append(UInt8(io.value)); return .handled }
        #expect(try vm.run(dispatcher) == [.halted])
        #expect(String(decoding: text.all, as: UTF8.self) == "Hi")
    }
}
