// A complete (tiny) custom VMM on VMMKit: RAM, a guest, an in-process console handler,
// the dlopen'd debug-exit plugin (C, built by scripts/build-plugins), run, report.
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
    // isa-debug-exit style, from a plugin: the guest ends the run with a status code.
    let plugins = PluginHost(vm: vm, dispatcher: dispatcher)
    let debugExit = try plugins.load("DebugExit", config: "port=0xf4")
    log("loaded \(debugExit.id) \(debugExit.version) from \(debugExit.path)")

    let reasons = try vm.run(dispatcher)
    plugins.close()
    log("vCPU 0: \(reasons[0]) after \(exits) console exits")
    if case let .guestExit(code) = vm.stopReason ?? reasons[0] { exit(code) }
    exit(1)
} catch {
    fail("\(error)")
}
