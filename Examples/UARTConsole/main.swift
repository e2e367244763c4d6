import Glibc
import GuestPayloads
import UART16550
import UARTVMM
import VMMKit

// uart-console: a guest console on a 16550A, with the host terminal as its keyboard.
//
//   uart-console [--guest echo|probe] [UART config ...]
//
// Each config is one UART in the plugin convention ("port=0x3f8,input=stdin"); the
// default is COM1 reading stdin (raw mode while the guest runs, restored on every way
// out) and writing stdout. The guest drives the first UART. Exit status: the guest's
// debug-exit code; 2 for a usage or configuration error (message on stderr); 1 when
// the VM stopped for another reason.

func fail(_ message: String, status: Int32) -> Never {
    let line = Array("uart-console: \(message)\n".utf8)
    _ = line.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
    exit(status)
}

var args = Array(CommandLine.arguments.dropFirst())
var guestName = "uart_echo"
if let i = args.firstIndex(of: "--guest") {
    guard i + 1 < args.count, ["echo", "probe"].contains(args[i + 1]) else {
        fail("--guest takes echo or probe", status: 2)
    }
    guestName = "uart_" + args[i + 1]
    args.removeSubrange(i...(i + 1))
}
if args.isEmpty { args = ["port=0x3f8,input=stdin,output=stdout"] }

do {
    let kvm = try KVM.open()
    let vm = try kvm.createVM()
    defer { vm.close() }
    try vm.memory.addRegion(name: "ram", guestAddress: 0, size: 2 << 20)
    var size = 0
    let code = guest_payload(guestName, &size)!
    try vm.memory.writeBytes(GuestLayout.codeStart, Array(UnsafeBufferPointer(start: code, count: size)))
    let vcpu = try vm.createVCPU()
    try vcpu.setupLongMode(entry: GuestLayout.codeStart, stack: 0x80000, ring: 3)
    let dispatcher = ExitDispatcher()
    try dispatcher.registerPIO(port: 0xf4, owner: "debug-exit") { io, _ in .stop(.guestExit(code: Int32(io.value))) }
    let uarts: [UARTDevice]
    do { uarts = try UARTDevice.attach(configs: args, vm: vm, dispatcher: dispatcher) } catch let error as UARTConfigError {
        fail(error.message, status: 2)
    }
    var regs = try vcpu.registers()
    switch uarts[0].config.placement {
    case let .pio(port): regs.r12 = UInt64(port); regs.r13 = 0; regs.r14 = 0
    case let .mmio(address, shift): regs.r12 = address; regs.r13 = UInt64(shift); regs.r14 = 1
    }
    try vcpu.setRegisters(regs)
    let reason = try vm.run(dispatcher)[0]
    for uart in uarts { uart.close() } // restores the terminal, flushes output
    guard case let .guestExit(code) = reason else { fail("the VM stopped: \(reason)", status: 1) }
    exit(code)
} catch {
    fail("\(error)", status: 1)
}
