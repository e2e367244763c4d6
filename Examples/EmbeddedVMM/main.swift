// A complete (tiny) custom VMM on VMMKit: RAM, a guest image booted by VMMLoader in one
// call, an in-process console handler, the dlopen'd debug-exit plugin (C, built by
// scripts/build-plugins), run, report.
//
//     embedded-vmm [IMAGE]     (default: .build/guests/hello64.elf, from scripts/build-guests)
import Glibc
import VMMKit
import VMMLoader

func log(_ message: String) {
    let line = "embedded-vmm: \(message)\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
}

func fail(_ message: String) -> Never {
    log(message)
    exit(2)
}

let image = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : ".build/guests/hello64.elf"
do {
    let kvm = try KVM.open()
    let vm = try kvm.createVM()
    defer { vm.close() }
    let ramSize: UInt64 = 2 << 20
    try vm.memory.addRegion(name: "ram", guestAddress: 0, size: ramSize)
    let vcpu = try vm.createVCPU()
    // ELF64, Multiboot or flat: read, placed in RAM, and the vCPU set up to enter it.
    let entry = try ImageLoader(memory: vm.memory, ramSize: ramSize).boot(ImageRequest(path: image), on: vcpu)
    log("booting \(image): \(entry)")

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
