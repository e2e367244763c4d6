// The code samples of the documentation, compiled (Examples/DocSamples/README.md).
import Glibc   // putchar
import VMMKit

func gettingStarted() throws {
    // doc-sample: Sources/VMMKit/VMMKit.docc/GettingStarted.md #1
    let kvm = try KVM.open()
    let vm = try kvm.createVM()
    try vm.memory.addRegion(name: "ram", guestAddress: 0, size: 2 << 20)
    // doc-sample: end
    // doc-sample: Sources/VMMKit/VMMKit.docc/GettingStarted.md #2
    try vm.memory.writeBytes(GuestLayout.codeStart, guestCode)
    let vcpu = try vm.createVCPU()
    try vcpu.setupLongMode(entry: GuestLayout.codeStart, stack: 0x80000)
    // doc-sample: end
    // doc-sample: Sources/VMMKit/VMMKit.docc/GettingStarted.md #3
    let dispatcher = ExitDispatcher()
    try dispatcher.registerPIO(port: 0x3f8, owner: "console") { io, _ in
        putchar(Int32(io.value))
        return .handled
    }
    try dispatcher.registerPIO(port: 0xf4, owner: "exit") { io, _ in
        .stop(.guestExit(code: Int32(io.value)))
    }
    let reasons = try vm.run(dispatcher)
    // doc-sample: end
    _ = reasons
}
