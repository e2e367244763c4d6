import Glibc
import GuestPayloads
import Testing
import UART16550
import UARTVMM
@testable import VMMKit

enum KVMAvailability {
    static let present = access(KVM.defaultPath, F_OK) == 0
    static let reason: Comment = "/dev/kvm is missing on this machine: KVM suites skipped"
}

/// A VM running one payload from Examples/Guests/uart.S, with a debug-exit port at
/// 0xf4 wired in-process (the C debug-exit plugin needs the plugin host).
final class UARTGuest {
    let kvm: KVM
    let vm: VirtualMachine
    let dispatcher = ExitDispatcher()

    init(_ payload: String, ring: Int = 3, irqchip: Bool = false) throws {
        kvm = try KVM.open()
        vm = try kvm.createVM()
        if irqchip { try vm.createIRQChip() }
        try vm.memory.addRegion(name: "ram", guestAddress: 0, size: 2 << 20)
        var size = 0
        let start = guest_payload(payload, &size)!
        try vm.memory.writeBytes(GuestLayout.codeStart, Array(UnsafeBufferPointer(start: start, count: size)))
        let vcpu = try vm.createVCPU()
        try vcpu.setupLongMode(entry: GuestLayout.codeStart, stack: 0x80000, ring: ring)
        try dispatcher.registerPIO(port: 0xf4, owner: "debug-exit") { io, _ in .stop(.guestExit(code: Int32(io.value))) }
    }

    var vcpu: VCPU { vm.vcpus[0] }

    /// Points the payload's UART helpers at `config` (r12 base, r13 shift, r14 mode).
    func target(_ config: UARTConfig) throws {
        var regs = try vcpu.registers()
        switch config.placement {
        case let .pio(port): regs.r12 = UInt64(port); regs.r13 = 0; regs.r14 = 0
        case let .mmio(address, shift): regs.r12 = address; regs.r13 = UInt64(shift); regs.r14 = 1
        }
        try vcpu.setRegisters(regs)
    }

    func editRegisters(_ edit: (inout Registers) -> Void) throws {
        var regs = try vcpu.registers()
        edit(&regs)
        try vcpu.setRegisters(regs)
    }

    func attach(_ configs: String...) throws -> [UARTDevice] {
        try UARTDevice.attach(configs: configs, vm: vm, dispatcher: dispatcher)
    }

    func run() throws -> StopReason { try vm.run(dispatcher)[0] }

    deinit { vm.close() }
}

func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

func sleepMilliseconds(_ ms: Int) { usleep(useconds_t(ms * 1000)) }
