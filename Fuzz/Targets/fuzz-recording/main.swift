import FuzzDriver
@testable import VMMKit

// The exit-recording file reader: any text parses to a recording or one error line;
// a recording that parses replays through the scripted vCPU under the real run loop
// (its patches are checked against kvm_run's size before any is applied).
runFuzzer { data, size in
    let text = String(decoding: fuzzInput(data, size), as: UTF8.self)
    let recording: ExitRecording
    do throws(VMMError) { recording = try ExitRecording(parsing: text) } catch { requireOneLine(error.description); return 0 }
    // What is written reads back the same.
    precondition((try? ExitRecording(parsing: recording.serialized()))?.entries.count == recording.entries.count)
    for id in Set(recording.entries.map(\.vcpu)).sorted().prefix(2) {
        guard let script = try? ScriptedVCPU(replaying: recording, vcpu: id) else { continue }
        let vcpu = VCPU(id: id, backend: script, memory: .detached())
        let dispatcher = ExitDispatcher()
        try! dispatcher.registerPIO(port: 0, count: 0xffff, owner: "fuzz") { _, _ in .handled }
        try! dispatcher.registerMMIO(address: 0, length: UInt64.max, owner: "fuzz") { _, _ in .handled }
        for kind in VMExitKind.allCases where kind != .io && kind != .mmio {
            try! dispatcher.register(kind, owner: "fuzz") { _, _ in .handled }
        }
        _ = vcpu.runLoop(dispatcher)
    }
    return 0
}
