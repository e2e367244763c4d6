import FuzzDriver
import Glibc
@testable import VMMKit

// The exit canary and exit decoding: the input is a script of KVM_RUN returns (rc,
// errno) and bytes the "kernel" writes anywhere in the kvm_run page, played by the
// scripted vCPU under the real run loop (poisoning, classification, decoding, fault
// counting, dispatch and completion). Handlers accept every exit and touch the data
// they are given, so a decoded length that lies is caught by ASan.
let errnos: [Int32] = [0, EINTR, EAGAIN, EFAULT, EHWPOISON, EINVAL, ENOMEM, ENOEXEC, EIO]

runFuzzer { data, size in
    let input = fuzzInput(data, size)
    var i = 0
    func next() -> UInt8? { guard i < input.count else { return nil }; defer { i += 1 }; return input[i] }
    let bufferSize = 3 * 4096
    var steps: [ScriptedVCPU.Step] = []
    while let h = next(), steps.count < 64 {
        let e = next() ?? 0
        let errno = e & 0x80 != 0 ? Int32(e & 0x7f) : errnos[Int(e) % errnos.count]
        var writes: [ScriptedVCPU.Patch] = []
        for _ in 0..<Int((h >> 1) & 7) {
            let lo = Int(next() ?? 0), hi = Int(next() ?? 0)
            // Mostly the exit record (offsets 0..<288), sometimes anywhere in the page.
            let offset = hi & 0x80 != 0 ? (hi << 8 | lo) % 4096 : lo % 288
            let count = min(Int(next() ?? 0) % 16 + 1, bufferSize - offset)
            var bytes: [UInt8] = []
            for _ in 0..<count { bytes.append(next() ?? 0) }
            writes.append(.init(offset, bytes))
        }
        steps.append(ScriptedVCPU.Step(rc: h & 1 != 0 ? -1 : 0, errno: errno, writes: writes))
    }
    let script = ScriptedVCPU(steps: steps, bufferSize: bufferSize)
    let vcpu = VCPU(id: 0, backend: script, memory: .detached())
    let dispatcher = ExitDispatcher()
    try! dispatcher.registerPIO(port: 0, count: 0xffff, owner: "fuzz") { io, _ in
        if io.isWrite { _ = io.data.reduce(0, &+) } else { for k in io.data.indices { io.data[k] = 0x5a } }
        return .handled
    }
    try! dispatcher.registerMMIO(address: 0, length: UInt64.max, owner: "fuzz") { access, _ in
        if !access.isWrite { access.data = 0x1122_3344_5566_7788 }
        return .handled
    }
    for kind in VMExitKind.allCases where kind != .io && kind != .mmio {
        try! dispatcher.register(kind, owner: "fuzz") { _, _ in .handled }
    }
    _ = vcpu.runLoop(dispatcher)
    return 0
}
