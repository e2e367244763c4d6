// A complete (tiny) custom VMM on VMMKit: RAM, a guest, a console port handler, run.
import GuestPayloads
import VMMKit

#if canImport(Glibc)
import Glibc
#endif

func log(_ message: String) {
    let line = "embedded-vmm: \(message)\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
}

func fail(_ message: String) -> Never {
    log(message)
    exit(2)
}

do {
    let kvm = try KVM.open()
    let vm = try kvm.createVM()
    defer { vm.close() }
    try vm.memory.addRegion(name: "ram", guestAddress: 0, size: 2 << 20)

    var size = 0
    guard let code = guest_payload("hello", &size) else { fail("the hello payload is missing from this build") }
    try vm.memory.writeBytes(GuestLayout.codeStart, Array(UnsafeBufferPointer(start: code, count: size)))

    let vcpu = try vm.createVCPU()
    try vcpu.setupLongMode(entry: GuestLayout.codeStart, stack: 0x80000)

    let dispatcher = ExitDispatcher()
    var exits = 0
    // The guest's console: each byte written to COM1's data port goes to stdout.
    try dispatcher.registerPIO(port: 0x3f8, owner: "console") { io, _ in
        exits += 1
        var byte = UInt8(truncatingIfNeeded: io.value)
        _ = write(1, &byte, 1)
        return .handled
    }
    // isa-debug-exit style: the guest ends the run with a status code.
    try dispatcher.registerPIO(port: 0xf4, owner: "debug-exit") { io, _ in .stop(.guestExit(code: Int32(io.value))) }

    let reasons = try vm.run(dispatcher)
    log("vCPU 0: \(reasons[0]) after \(exits) console exits")
    if case let .guestExit(code) = reasons[0] { exit(code) }
    exit(1)
} catch {
    fail("\(error)")
}
