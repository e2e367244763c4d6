// The code samples of the documentation, compiled (Examples/DocSamples/README.md).
import Glibc   // putchar
import VMMKit

func readmeTour() throws {
    // doc-sample: README.md #1
    let kvm = try KVM.open()                       // clear error if /dev/kvm is missing
    let vm = try kvm.createVM()
    try vm.memory.addRegion(name: "ram", guestAddress: 0, size: 2 << 20, backing: .memfd)
    try vm.memory.writeBytes(GuestLayout.codeStart, guestCode)
    let vcpu = try vm.createVCPU()
    try vcpu.setupLongMode(entry: GuestLayout.codeStart, stack: 0x80000, ring: 3)

    let dispatcher = ExitDispatcher()
    try dispatcher.registerPIO(port: 0x3f8, owner: "console") { io, _ in
        putchar(Int32(io.value)); return .handled
    }
    try dispatcher.registerMMIO(address: 0xd000_0000, length: 0x1000, owner: "dev") { access, _ in
        if !access.isWrite { access.data = 42 }    // the guest reads 42
        return .handled
    }
    try dispatcher.registerPIO(port: 0xf4, owner: "exit") { io, _ in .stop(.guestExit(code: Int32(io.value))) }
    let reasons = try vm.run(dispatcher)           // one thread per vCPU; [StopReason]
    // doc-sample: end
    _ = reasons
}
