import CKVM
import Glibc

/// Records every entry of a vCPU by wrapping its backend: the canary, decoding and
/// handlers run unchanged above it. Install with `VCPU.startRecording()` before the
/// vCPU starts; read `recording` after it stopped.
public final class ExitRecorder: VCPUBackend, @unchecked Sendable {
    let inner: any VCPUBackend
    let vcpuID: UInt32
    private var afterImage: [UInt8]?
    private let entries = Lock<[ExitRecording.Entry]>([])

    init(wrapping inner: any VCPUBackend, vcpu: UInt32) {
        self.inner = inner
        self.vcpuID = vcpu
    }

    public var runBuffer: UnsafeMutableRawPointer { inner.runBuffer }
    public var runBufferSize: Int { inner.runBufferSize }
    public var fd: Int32 { inner.fd }

    private func image() -> [UInt8] {
        [UInt8](UnsafeRawBufferPointer(start: inner.runBuffer, count: inner.runBufferSize))
    }

    public func enter() -> (rc: Int32, errno: Int32) {
        let before = image()
        let core = afterImage.map { ExitRecording.diff(from: $0, to: before, in: ExitRecording.completionWindow(afterExit: $0)) }
        let result = inner.enter()
        let after = image()
        afterImage = after
        var kernel = [ScriptedVCPU.Patch(0, Array(after[0..<ExitRecording.recordedPrefix]))]
        if result.rc == 0, let io = ExitRecording.ioDataRange(after) { kernel.append(.init(io.lowerBound, Array(after[io]))) }
        let entry = ExitRecording.Entry(vcpu: vcpuID, rc: result.rc, errno: result.errno, coreWrites: core,
                                        kernelBytes: kernel, registerReads: [])
        entries.withLock { $0.append(entry) }
        return result
    }

    public func registers() throws(VMMError) -> Registers {
        let regs = try inner.registers()
        let bytes = withUnsafeBytes(of: regs) { Array($0) }
        entries.withLock { entries in
            if !entries.isEmpty { entries[entries.count - 1].registerReads.append(bytes) }
        }
        return regs
    }

    public func setRegisters(_ regs: Registers) throws(VMMError) { try inner.setRegisters(regs) }
    public func translate(_ virtualAddress: UInt64) throws(VMMError) -> UInt64? { try inner.translate(virtualAddress) }
    public func close() { inner.close() }
    public func entryError(errno: Int32, vcpu: UInt32) -> VMMError { inner.entryError(errno: errno, vcpu: vcpu) }
    public func missingFDError(vcpu: UInt32) -> VMMError { inner.missingFDError(vcpu: vcpu) }

    /// What has been recorded so far.
    public var recording: ExitRecording {
        ExitRecording(entries: entries.withLock { $0 })
    }
}

extension VCPU {
    /// Starts recording every entry of this vCPU (call before `start`/`runLoop`).
    @discardableResult
    public func startRecording() -> ExitRecorder {
        if let existing = backend as? ExitRecorder { return existing }
        let recorder = ExitRecorder(wrapping: backend, vcpu: id)
        backend = recorder
        return recorder
    }
}
