import CKVM
import Glibc
import SystemPackage

/// A vCPU that plays steps instead of entering a guest: for each entry it writes the
/// step's bytes into its own `kvm_run`-sized buffer (as the kernel would) and returns
/// the step's rc and errno. Before each entry it keeps a copy of the buffer, so a test
/// can assert byte-exactly what the core wrote (poison, completions) — for the cases
/// the kernel here cannot be made to produce. A replayed recording is a script too.
///
/// Driven by one thread (the vCPU's); read the results after the run.
public final class ScriptedVCPU: VCPUBackend, @unchecked Sendable {
    /// One entry's worth of "kernel" behaviour.
    public struct Step: Sendable {
        public var rc: Int32
        public var errno: Int32
        /// Bytes written into the buffer during the entry, at byte offsets of `kvm_run`.
        public var writes: [Patch]
        /// Register state from this entry on (nil: unchanged).
        public var registers: Registers?
        /// Replay: the bytes the core must have written since the previous exit (nil: unchecked).
        public var expectedCoreWrites: [Patch]?
        /// Replay: the results of `registers()` calls made after this exit, in order.
        public var registerReads: [Registers]

        public init(rc: Int32 = 0, errno: Int32 = 0, writes: [Patch], registers: Registers? = nil,
                    expectedCoreWrites: [Patch]? = nil, registerReads: [Registers] = []) {
            self.rc = rc
            self.errno = errno
            self.writes = writes
            self.registers = registers
            self.expectedCoreWrites = expectedCoreWrites
            self.registerReads = registerReads
        }
    }

    /// Bytes at an offset of `kvm_run`.
    public struct Patch: Sendable, Equatable, CustomStringConvertible {
        public var offset: Int
        public var bytes: [UInt8]
        public init(_ offset: Int, _ bytes: [UInt8]) { self.offset = offset; self.bytes = bytes }
        public var description: String { "\(offset):" + bytes.map { String($0, radix: 16).leftPad(2) }.joined() }
    }

    public let runBuffer: UnsafeMutableRawPointer
    public let runBufferSize: Int
    public var fd: Int32 { -1 }
    private let steps: [Step]
    private var position = 0
    private var currentRegisters: Registers
    private var pendingReads: [Registers] = []
    private var afterImage: [UInt8]
    /// Whether to keep a full copy of the buffer before each entry (off for benchmarks).
    public var capturesEntries = true
    /// The buffer as the core left it right before entry `i`.
    public private(set) var entrySnapshots: [[UInt8]] = []
    /// Registers the core (or a handler) set, in order.
    public private(set) var registerWrites: [Registers] = []
    /// Replay differences: expected core writes that did not match, or reads past the record.
    public private(set) var mismatches: [String] = []
    /// Guest-virtual → guest-physical answers for `translate` (4 KiB pages).
    public var translations: [UInt64: UInt64] = [:]

    public init(steps: [Step], registers: Registers = Registers(), bufferSize: Int = 3 * 4096) {
        precondition(bufferSize >= 304, "a kvm_run buffer has at least 304 bytes")
        self.steps = steps
        self.runBufferSize = bufferSize
        self.runBuffer = .allocate(byteCount: bufferSize, alignment: 64)
        runBuffer.initializeMemory(as: UInt8.self, repeating: 0, count: bufferSize)
        self.currentRegisters = registers
        self.afterImage = [UInt8](repeating: 0, count: bufferSize)
    }

    deinit { runBuffer.deallocate() }

    public var stepCount: Int { steps.count }
    /// Entries performed so far.
    public var entries: Int { position }
    /// Whether an entry was asked for after the last step.
    public private(set) var ranOut = false
    /// Returned (with rc -1) once every step has been played.
    public static let exhaustedErrno = ENODATA

    public func enter() -> (rc: Int32, errno: Int32) {
        if capturesEntries || steps.indices.contains(position) && steps[position].expectedCoreWrites != nil {
            let now = [UInt8](UnsafeRawBufferPointer(start: runBuffer, count: runBufferSize))
            if capturesEntries { entrySnapshots.append(now) }
            if position < steps.count, let expected = steps[position].expectedCoreWrites, position > 0 {
                let window = ExitRecording.completionWindow(afterExit: afterImage)
                let actual = ExitRecording.diff(from: afterImage, to: now, in: window)
                if actual != expected {
                    mismatches.append("entry \(position): the core wrote \(actual) where the record has \(expected)")
                }
            }
        }
        if !pendingReads.isEmpty {
            mismatches.append("entry \(position): \(pendingReads.count) recorded register reads were not made")
        }
        guard position < steps.count else { ranOut = true; return (-1, Self.exhaustedErrno) }
        let step = steps[position]
        position += 1
        for patch in step.writes {
            precondition(patch.offset >= 0 && patch.offset + patch.bytes.count <= runBufferSize, "patch \(patch) outside the buffer")
            patch.bytes.withUnsafeBytes { (runBuffer + patch.offset).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        }
        if let regs = step.registers { currentRegisters = regs }
        pendingReads = step.registerReads
        if capturesEntries || step.expectedCoreWrites != nil || steps.indices.contains(position) && steps[position].expectedCoreWrites != nil {
            afterImage = [UInt8](UnsafeRawBufferPointer(start: runBuffer, count: runBufferSize))
        }
        return (step.rc, step.rc < 0 ? step.errno : 0)
    }

    public func registers() throws(VMMError) -> Registers {
        if !pendingReads.isEmpty { currentRegisters = pendingReads.removeFirst() }
        return currentRegisters
    }

    public func setRegisters(_ regs: Registers) throws(VMMError) {
        registerWrites.append(regs)
        currentRegisters = regs
    }

    public func translate(_ virtualAddress: UInt64) throws(VMMError) -> UInt64? {
        translations[virtualAddress & ~0xfff].map { $0 | (virtualAddress & 0xfff) }
    }

    public func close() {}

    public func entryError(errno: Int32, vcpu: UInt32) -> VMMError {
        if ranOut { return .invalidArgument("scripted vCPU \(vcpu) has played all its \(stepCount) steps") }
        return .ioctlFailed(name: "KVM_RUN", errno: Errno(rawValue: errno))
    }

    public func missingFDError(vcpu: UInt32) -> VMMError {
        .invalidArgument("vCPU \(vcpu) is not a KVM vCPU: only registers and address translation are available")
    }
}
