import Glibc
import Testing
@testable import VMMKit

/// An observer that asks for handler names gets, per exit, the owner whose verdict counted.
private final class Names: ExitObserver, @unchecked Sendable {
    var lines: [String] = []
    var pending = ""
    var observesHandlers: Bool { true }
    func handled(by owner: String, _ exit: VMExit, on vcpu: VCPU) { pending = owner }
    func willDispatch(_ exit: VMExit, on vcpu: VCPU) {}
    func didDispatch(_ exit: VMExit, verdict: ExitVerdict, on vcpu: VCPU) {
        if case let .mmio(a) = exit { lines.append("\(pending) mmio \(a.isWrite ? "write" : "read") \(a.data)") }
        else { lines.append("\(pending) \(exit.kind)") }
        pending = ""
    }
}

@Suite("Exit observers that name handlers")
struct DispatchObserverTests {
    @Test("notMine passes to the next owner; kind handlers and the default are named; reads carry the handler's data")
    func namesTheHandlerThatTookIt() throws {
        let script = ScriptedVCPU(steps: [.pioOut(port: 0x10, size: 1, value: 1), .mmio(address: 0x1000, length: 4, isWrite: false), .hlt])
        let vcpu = VCPU(id: 0, backend: script, memory: .detached())
        let dispatcher = ExitDispatcher()
        let names = Names()
        try dispatcher.registerPIO(port: 0x10, priority: 1, exclusive: false, owner: "first") { _, _ in .notMine }
        try dispatcher.registerPIO(port: 0x10, exclusive: false, owner: "second") { _, _ in .handled }
        try dispatcher.registerMMIO(address: 0x1000, length: 0x10, owner: "device") { a, _ in a.data = 42; return .handled }
        try dispatcher.setObserver(names)
        #expect(vcpu.runLoop(dispatcher) == .halted)
        #expect(names.lines == ["second io", "device mmio read 42", "default hlt"])

        let withKind = ExitDispatcher()
        let kindNames = Names()
        try withKind.register(.hlt, owner: "halter") { _, _ in .stop(.requested) }
        try withKind.setObserver(kindNames)
        let again = VCPU(id: 1, backend: ScriptedVCPU(steps: [.hlt]), memory: .detached())
        #expect(again.runLoop(withKind) == .requested)
        #expect(kindNames.lines == ["halter hlt"])
    }
}
