import Glibc
import UART16550
import UARTVMM
import VMMKit

/// Issue 5's benchmark: guest console throughput through the 16550A. The same ring-3
/// guest (`uart_bulk`: THR writes, one LSR.THRE check per 16 bytes like Linux's
/// serial8250_tx_chars) prints N bytes through a plain PIO COM1 (the baseline, one exit
/// per byte), then through the other placements, all in this run. Prints bytes/s,
/// exits per KiB and the speed-up over the baseline; every run's bytes are checked.
enum UARTBench {
    struct Result { let seconds: Double; let exits: UInt64 }

    static func run() throws {
        let bytes = getenv("VMM_BENCH_UART_BYTES").flatMap { Int(String(cString: $0)) } ?? (128 << 10)
        let rounds = getenv("VMM_BENCH_ROUNDS").flatMap { Int(String(cString: $0)) } ?? 3
        let kvm = try KVM.open()
        let cases = [
            ("plain PIO", "port=0x3f8"),
            ("plain MMIO", "mmio=0xd0000000"),
            ("coalesced PIO", "port=0x3f8,coalesce=on"),
            ("coalesced MMIO", "mmio=0xd0000000,coalesce=on"),
        ]
        // Rounds alternate the cases so load from a shared machine hits all alike.
        var seconds = Array(repeating: [Double](), count: cases.count)
        var exits = Array(repeating: UInt64(0), count: cases.count)
        for _ in 0..<rounds {
            for (i, c) in cases.enumerated() {
                let r = try once(kvm, config: c.1, bytes: bytes)
                seconds[i].append(r.seconds)
                exits[i] = r.exits
            }
        }
        print("== UART console: \(bytes) bytes per run, median of \(rounds) alternating rounds; plain PIO COM1 is the baseline")
        print("path                KB/s      exits/KiB  us/byte  speed-up")
        let baseline = median(seconds[0])
        for (i, c) in cases.enumerated() {
            let t = median(seconds[i])
            let kbps = Double(bytes) / t / 1e3
            let perKiB = Double(exits[i]) / (Double(bytes) / 1024)
            print("\(c.0.padding(20))\(fmt(kbps, 1).padding(10))\(fmt(perKiB, 1).padding(11))\(fmt(t * 1e6 / Double(bytes), 2).padding(9))\(fmt(baseline / t, 2))x")
        }
        let ratio = baseline / median(seconds[3])
        print("coalesced MMIO vs plain PIO: \(fmt(ratio, 2))x the throughput, \(fmt(Double(exits[0]) / Double(exits[3]), 1))x fewer exits")
    }

    static func once(_ kvm: KVM, config: String, bytes: Int) throws -> Result {
        let vm = try kvm.createVM()
        defer { vm.close() }
        try vm.memory.addRegion(name: "ram", guestAddress: 0, size: 2 << 20)
        try vm.memory.writeBytes(GuestLayout.codeStart, payload("uart_bulk"))
        let vcpu = try vm.createVCPU()
        try vcpu.setupLongMode(entry: GuestLayout.codeStart, stack: 0x80000, ring: 3)
        let dispatcher = ExitDispatcher()
        try dispatcher.registerPIO(port: 0xf4, owner: "debug-exit") { io, _ in .stop(.guestExit(code: Int32(io.value))) }
        let uart = try UARTDevice.attach(configs: [config + ",output=buffer"], vm: vm, dispatcher: dispatcher)[0]
        var regs = try vcpu.registers()
        switch uart.config.placement {
        case let .pio(port): regs.r12 = UInt64(port); regs.r13 = 0; regs.r14 = 0
        case let .mmio(address, shift): regs.r12 = address; regs.r13 = UInt64(shift); regs.r14 = 1
        }
        regs.r15 = UInt64(bytes)
        try vcpu.setRegisters(regs)
        let start = now()
        let reason = vcpu.runLoop(dispatcher)
        let elapsed = Double(now() - start) / 1e9
        let out = uart.captured
        let expected = (0..<bytes).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ ($0 >> 8)) }
        precondition(reason == .guestExit(code: 0) && out == expected, "UART run \(config) went wrong: \(reason), \(out.count) bytes")
        return Result(seconds: elapsed, exits: vcpu.exitCount)
    }
}
