import Glibc
import Synchronization
import VMMKit

/// The benchmark's guest, at ring 3 in long mode: `out 0x12` (its first instruction);
/// with RDX != 0 it writes one qword into each of RSI pages from RDI (the cold boot
/// making its state); `out 0x10` (the gate the snapshot is taken at); `out 0x12` (the
/// first instruction after a restore); then it reads one qword of each of those pages
/// and ends with `out 0xf4` of their folded sum.
enum BenchGuest {
    static let code: [UInt8] = [
        0xe6, 0x12,                                     // out %al, $0x12
        0x48, 0x85, 0xd2,                               // test %rdx, %rdx
        0x74, 0x15,                                     // jz gate
        0x48, 0x89, 0xfb, 0x48, 0x89, 0xf1,             // mov %rdi, %rbx; mov %rsi, %rcx
        0x48, 0x89, 0x0b,                               // 1: mov %rcx, (%rbx)
        0x48, 0x81, 0xc3, 0x00, 0x10, 0x00, 0x00,       // add $4096, %rbx
        0x48, 0xff, 0xc9, 0x75, 0xf1,                   // dec %rcx; jnz 1b
        0xe6, 0x10,                                     // gate: out %al, $0x10
        0xe6, 0x12,                                     // out %al, $0x12
        0x48, 0x89, 0xfb, 0x48, 0x89, 0xf1,             // mov %rdi, %rbx; mov %rsi, %rcx
        0x31, 0xc0,                                     // xor %eax, %eax
        0x48, 0x03, 0x03,                               // 2: add (%rbx), %rax
        0x48, 0x81, 0xc3, 0x00, 0x10, 0x00, 0x00,       // add $4096, %rbx
        0x48, 0xff, 0xc9, 0x75, 0xf1,                   // dec %rcx; jnz 2b
        0x89, 0xc3, 0x48, 0xc1, 0xe8, 0x20, 0x31, 0xd8, // fold rax to eax
        0xe7, 0xf4,                                     // out %eax, $0xf4
        0xf4,                                           // hlt
    ]
    static let dataStart: UInt64 = 4 << 20

    /// A fresh VM of `memory` bytes (memfd RAM), the guest loaded, its vCPU at the entry.
    static func boot(_ kvm: KVM, memory: UInt64, touchedPages: UInt64) throws -> VirtualMachine {
        let vm = try kvm.createVM()
        try vm.memory.addRegion(name: "ram", guestAddress: 0, size: memory, backing: .memfd)
        try vm.memory.writeBytes(GuestLayout.codeStart, code)
        let vcpu = try vm.createVCPU()
        try vcpu.setupLongMode(entry: GuestLayout.codeStart, stack: 0x80000, ring: 3)
        var regs = try vcpu.registers()
        regs.rdi = dataStart; regs.rsi = touchedPages; regs.rdx = 1
        try vcpu.setRegisters(regs)
        return vm
    }

    /// The sum the guest reports for `pages` pages written by its cold boot.
    static func expectedSum(_ pages: UInt64) -> Int32 {
        let sum = pages &* (pages &+ 1) / 2
        return Int32(bitPattern: UInt32(truncatingIfNeeded: sum) ^ UInt32(truncatingIfNeeded: sum >> 32))
    }
}

/// Monotonic nanoseconds.
func now() -> UInt64 {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
}

/// Handlers for one run: the first `out 0x12` after `start` stamps the first
/// instruction, `out 0x10` either stops the vCPU (the snapshot run) or passes, `out
/// 0xf4` stamps the end and stops with the guest's sum.
final class RunClock: Sendable {
    let firstInstruction = Atomic<UInt64>(0)
    let done = Atomic<UInt64>(0)

    func dispatcher(stopAtGate: Bool) throws -> ExitDispatcher {
        let d = ExitDispatcher()
        try d.registerPIO(port: 0x12, owner: "first-instruction") { [self] _, _ in
            if firstInstruction.load(ordering: .relaxed) == 0 { firstInstruction.store(now(), ordering: .relaxed) }
            return .handled
        }
        try d.registerPIO(port: 0x10, owner: "gate") { _, _ in stopAtGate ? .stop(.requested) : .handled }
        try d.registerPIO(port: 0xf4, owner: "exit") { [self] io, _ in
            done.store(now(), ordering: .relaxed)
            return .stop(.guestExit(code: Int32(bitPattern: io.value)))
        }
        return d
    }
}
