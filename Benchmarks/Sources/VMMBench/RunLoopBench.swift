import CKVMTestSupport
import VMMKit

/// Issue 2's benchmark: the same guest (N `out` exits, then N MMIO writes) under the
/// plain C loop and under the Swift run loop with a registered handler, alternating
/// rounds so drift on a shared machine hits both alike. Prints ns/exit and Swift/C.
enum RunLoopBench {
    static let mmioBase: UInt64 = 0xd000_0000

    static func run(exits: Int, rounds: Int) throws {
        let kvm = try KVM.open()
        print("== Run loop: Swift (VMMKit dispatch) vs raw C loop, \(exits) exits per round, \(rounds) rounds")
        print("shape  C ns/exit  Swift ns/exit  Swift/C")
        for shape in ["pio", "mmio"] {
            var c: [Double] = [], swift: [Double] = []
            for _ in 0..<rounds {
                c.append(try cLoop(kvm, shape, exits))
                swift.append(try swiftLoop(kvm, shape, exits))
            }
            let (cm, sm) = (median(c), median(swift))
            print("\(shape.padding(6))\(fmt(cm).padding(11))\(fmt(sm).padding(15))\(fmt(sm / cm, 3))")
        }
    }

    static func setup(_ shape: String, _ exits: Int) -> (inout Registers) -> Void {
        { regs in
            regs.rcx = UInt64(exits)
            regs.rdx = 0x10
            regs.rbx = mmioBase
            regs.rax = 1
        }
    }

    static func cLoop(_ kvm: KVM, _ shape: String, _ exits: Int) throws -> Double {
        let (vm, vcpu) = try makeGuest(kvm, "bench_\(shape)", setup: setup(shape, exits))
        defer { vm.close() }
        let start = now()
        let r = ckvm_raw_run_loop(vcpu.fd, vcpu.unsafeRunPage)
        let elapsed = Double(now() - start)
        precondition(r.err == 0 && r.exits == UInt64(exits) && r.checksum == UInt64(exits), "C loop went wrong: \(r)")
        return elapsed / Double(exits)
    }

    static func swiftLoop(_ kvm: KVM, _ shape: String, _ exits: Int) throws -> Double {
        let (vm, vcpu) = try makeGuest(kvm, "bench_\(shape)", setup: setup(shape, exits))
        defer { vm.close() }
        let dispatcher = ExitDispatcher()
        var count = 0, checksum: UInt64 = 0
        try dispatcher.registerPIO(port: 0x10, owner: "bench") { io, _ in
            count += 1; checksum &+= UInt64(io.value); return .handled
        }
        try dispatcher.registerMMIO(address: mmioBase, length: 0x1000, owner: "bench") { a, _ in
            count += 1; checksum &+= a.data; return .handled
        }
        let start = now()
        let reason = vcpu.runLoop(dispatcher)
        let elapsed = Double(now() - start)
        precondition(reason == .halted && count == exits && checksum == UInt64(exits), "Swift loop went wrong: \(reason)")
        return elapsed / Double(exits)
    }
}

extension String {
    func padding(_ width: Int) -> String { count >= width ? self + " " : self + String(repeating: " ", count: width - count) }
}
