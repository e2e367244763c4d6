import CKVM
import Glibc
import SystemPackage
import Testing
@testable import VMMKit

/// A backend of the test's own: every entry fails with EIO, and it words that itself.
private final class FailingBackend: VCPUBackend, @unchecked Sendable {
    let runBuffer: UnsafeMutableRawPointer = .allocate(byteCount: 4096, alignment: 64)
    let runBufferSize = 4096
    var fd: Int32 { -1 }
    deinit { runBuffer.deallocate() }
    func enter() -> (rc: Int32, errno: Int32) { (-1, EIO) }
    func registers() throws(VMMError) -> Registers { Registers() }
    func setRegisters(_ regs: Registers) throws(VMMError) {}
    func translate(_ virtualAddress: UInt64) throws(VMMError) -> UInt64? { nil }
    func close() {}
    func entryError(errno: Int32, vcpu: UInt32) -> VMMError {
        .invalidArgument("test backend of vCPU \(vcpu): the device went away (errno \(errno))")
    }
    func missingFDError(vcpu: UInt32) -> VMMError { .invalidArgument("test backend of vCPU \(vcpu) has no fd") }
}

/// EAGAIN on every entry but one: entry `exitAt` (0-based) is a HLT.
private final class AgainBackend: VCPUBackend, @unchecked Sendable {
    let runBuffer: UnsafeMutableRawPointer = .allocate(byteCount: 4096, alignment: 64)
    let runBufferSize = 4096
    let exitAt: Int
    private(set) var entries = 0
    init(exitAt: Int) { self.exitAt = exitAt }
    var fd: Int32 { -1 }
    deinit { runBuffer.deallocate() }
    func enter() -> (rc: Int32, errno: Int32) {
        defer { entries += 1 }
        guard entries == exitAt else { return (-1, EAGAIN) }
        runBuffer.storeBytes(of: UInt32(KVM_EXIT_HLT), toByteOffset: ExitCanary.exitReasonOffset, as: UInt32.self)
        return (0, 0)
    }
    func registers() throws(VMMError) -> Registers { Registers() }
    func setRegisters(_ regs: Registers) throws(VMMError) {}
    func translate(_ virtualAddress: UInt64) throws(VMMError) -> UInt64? { nil }
    func close() {}
}

/// A backend whose entry is C (`entryFunction`, as `KVMBackend`'s): three HLTs, then
/// -1 with errno EIO. Its Swift `enter()` only counts, to show the loop never calls it.
private final class FunctionBackend: VCPUBackend, @unchecked Sendable {
    let runBuffer: UnsafeMutableRawPointer = .allocate(byteCount: 4096, alignment: 64)
    let runBufferSize = 4096
    var entries = 0, swiftEntries = 0
    var fd: Int32 { -1 }
    deinit { runBuffer.deallocate() }
    var entryFunction: VCPUEntryFunction? {
        VCPUEntryFunction({ context in
            let backend = Unmanaged<FunctionBackend>.fromOpaque(context!).takeUnretainedValue()
            backend.entries += 1
            guard backend.entries <= 3 else { errno = EIO; return -1 }
            backend.runBuffer.storeBytes(of: UInt32(KVM_EXIT_HLT), toByteOffset: ExitCanary.exitReasonOffset, as: UInt32.self)
            return 0
        }, context: Unmanaged.passUnretained(self).toOpaque())
    }
    func enter() -> (rc: Int32, errno: Int32) { swiftEntries += 1; return (-1, ENOSYS) }
    func registers() throws(VMMError) -> Registers { Registers() }
    func setRegisters(_ regs: Registers) throws(VMMError) {}
    func translate(_ virtualAddress: UInt64) throws(VMMError) -> UInt64? { nil }
    func close() {}
    func entryError(errno: Int32, vcpu: UInt32) -> VMMError { .invalidArgument("C entry of vCPU \(vcpu): errno \(errno)") }
}

@Suite("Backends word their own errors")
struct BackendErrorTests {
    @Test("the run loop stops with the error the backend words, not one the core guesses")
    func customBackend() {
        let vcpu = VCPU(id: 3, backend: FailingBackend(), memory: .detached())
        #expect(vcpu.runLoop(ExitDispatcher()) == .error(.invalidArgument("test backend of vCPU 3: the device went away (errno 5)")))
        // The hot loop counts each entry before it looks at it: a failed one is taken back.
        #expect(vcpu.exitCount == 0)
        #expect(throws: VMMError.invalidArgument("test backend of vCPU 3 has no fd")) { try vcpu.specialRegisters() }
    }

    @Test("a backend with a C entry is entered through it, never through enter(), and its errno reaches its error")
    func cEntry() throws {
        let backend = FunctionBackend()
        let vcpu = VCPU(id: 2, backend: backend, memory: .detached())
        let dispatcher = ExitDispatcher()
        var halts = 0
        try dispatcher.register(.hlt, owner: "test") { _, _ in halts += 1; return .handled }
        #expect(vcpu.runLoop(dispatcher) == .error(.invalidArgument("C entry of vCPU 2: errno \(EIO)")))
        #expect(halts == 3)
        #expect(backend.entries == 4)
        #expect(backend.swiftEntries == 0)
        #expect(vcpu.exitCount == 3)
    }

    @Test("a script's own failure step is a KVM_RUN error; running out is said as such")
    func scriptedFailureVersusRunningOut() {
        let failing = VCPU(id: 0, backend: ScriptedVCPU(steps: [.failure(errno: EIO)]), memory: .detached())
        #expect(failing.runLoop(ExitDispatcher()) == .error(.ioctlFailed(name: "KVM_RUN", errno: .ioError)))
        let empty = VCPU(id: 1, backend: ScriptedVCPU(steps: []), memory: .detached())
        #expect(empty.runLoop(ExitDispatcher()) == .error(.invalidArgument("scripted vCPU 1 has played all its 0 steps")))
    }

    @Test("EAGAIN is a kick, but againLimit of them in a row end the run: an exit in between starts the count again")
    func eagainForever() throws {
        let limit = VCPUCanary.againLimit
        let backend = AgainBackend(exitAt: limit - 1)
        let vcpu = VCPU(id: 0, backend: backend, memory: .detached())
        let dispatcher = ExitDispatcher()
        try dispatcher.register(.hlt, owner: "test") { _, _ in .handled }
        let reason = vcpu.runLoop(dispatcher)
        guard case let .error(.ioctlFailed(name, errno)) = reason else {
            Issue.record("stopped with \(reason)")
            return
        }
        #expect(name.hasPrefix("KVM_RUN (EAGAIN \(limit) times in a row"))
        #expect(errno == .resourceTemporarilyUnavailable)
        // limit - 1 kicks, the HLT, then limit more: the HLT broke the first run of them.
        #expect(backend.entries == 2 * limit)
    }

    @Test("a recorded script that runs out still says so, and is still not a KVM vCPU")
    func recorderForwards() throws {
        let vcpu = VCPU(id: 0, backend: ScriptedVCPU(steps: [.hlt]), memory: .detached())
        vcpu.startRecording()
        let dispatcher = ExitDispatcher()
        try dispatcher.register(.hlt, owner: "test") { _, _ in .handled }
        #expect(vcpu.runLoop(dispatcher) == .error(.invalidArgument("scripted vCPU 0 has played all its 1 steps")))
        #expect(throws: VMMError.invalidArgument("vCPU 0 is not a KVM vCPU: only registers and address translation are available")) {
            try vcpu.specialRegisters()
        }
    }
}
