import CKVM
import Glibc

/// Every entry of a real run, as the core saw it: what the core wrote into `kvm_run`
/// before the entry (poison, completions: the data handed back), what `KVM_RUN`
/// returned, the bytes the kernel left, and the registers read afterwards. A
/// `ScriptedVCPU(replaying:vcpu:)` plays it back against the same handlers without
/// `/dev/kvm`. The file format is documented in `Docs/ExitRecording.md`.
public struct ExitRecording: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public var vcpu: UInt32
        public var rc: Int32
        public var errno: Int32
        /// Bytes the core changed since the previous exit (nil for a vCPU's first entry,
        /// which has no previous exit to compare with).
        public var coreWrites: [ScriptedVCPU.Patch]?
        /// The kernel's exit record after the entry: header and union, and I/O data.
        public var kernelBytes: [ScriptedVCPU.Patch]
        /// `KVM_GET_REGS` results read after this exit, in order (raw `kvm_regs` bytes).
        public var registerReads: [[UInt8]]
    }

    public static let header = "vmmkit-exit-recording v1"
    /// kvm_run up to the end of the exit union.
    static let recordedPrefix = 288

    public var entries: [Entry] = []

    public init(entries: [Entry] = []) { self.entries = entries }

    /// Several vCPUs' recordings in one (each vCPU's entries keep their order).
    public init(merging parts: [ExitRecording]) { entries = parts.flatMap(\.entries) }

    public func entries(ofVCPU id: UInt32) -> [Entry] { entries.filter { $0.vcpu == id } }

    // MARK: Byte windows shared by recorder and replay

    /// Bytes whose change between an exit and the next entry is "the core's answer":
    /// the header and union except `immediate_exit` (kicks are timing), plus the I/O
    /// data area when the exit was I/O.
    static func completionWindow(afterExit image: [UInt8]) -> [Range<Int>] {
        var window = [0..<1, 2..<recordedPrefix]
        if let io = ioDataRange(image) { window.append(io) }
        return window
    }

    static func ioDataRange(_ image: [UInt8]) -> Range<Int>? {
        image.withUnsafeBytes { raw -> Range<Int>? in
            guard raw.loadUnaligned(fromByteOffset: ExitCanary.exitReasonOffset, as: UInt32.self) == UInt32(KVM_EXIT_IO) else { return nil }
            let size = Int(raw[ExitCanary.unionOffset + 1])
            let count = Int(raw.loadUnaligned(fromByteOffset: ExitCanary.unionOffset + 4, as: UInt32.self))
            let offset = raw.loadUnaligned(fromByteOffset: ExitCanary.unionOffset + 8, as: UInt64.self)
            guard offset >= UInt64(recordedPrefix), offset < UInt64(image.count), size * count <= image.count - Int(offset) else { return nil }
            return Int(offset)..<(Int(offset) + size * count)
        }
    }

    /// Runs of bytes that differ between two images, inside `window`.
    static func diff(from old: [UInt8], to new: [UInt8], in window: [Range<Int>]) -> [ScriptedVCPU.Patch] {
        var patches: [ScriptedVCPU.Patch] = []
        for range in window {
            var i = range.lowerBound
            while i < range.upperBound {
                guard old[i] != new[i] else { i += 1; continue }
                var j = i
                while j < range.upperBound && old[j] != new[j] { j += 1 }
                patches.append(.init(i, Array(new[i..<j])))
                i = j
            }
        }
        return patches
    }

    // MARK: Replay

    /// The steps that replay vCPU `id`'s entries.
    public func steps(forVCPU id: UInt32) throws(VMMError) -> [ScriptedVCPU.Step] {
        try entries(ofVCPU: id).map { entry throws(VMMError) in
            let reads = try entry.registerReads.map { bytes throws(VMMError) -> Registers in
                guard bytes.count == MemoryLayout<Registers>.size else {
                    throw .invalidArgument("recording: a register read of vCPU \(id) has \(bytes.count) bytes, not \(MemoryLayout<Registers>.size)")
                }
                var regs = Registers()
                withUnsafeMutableBytes(of: &regs) { $0.copyBytes(from: bytes) }
                return regs
            }
            return ScriptedVCPU.Step(rc: entry.rc, errno: entry.errno, writes: entry.kernelBytes,
                                     expectedCoreWrites: entry.coreWrites, registerReads: reads)
        }
    }
}

extension ScriptedVCPU {
    /// A scripted vCPU that replays vCPU `vcpu` of `recording`, checking that the core
    /// hands back the same data (see `mismatches`).
    public convenience init(replaying recording: ExitRecording, vcpu: UInt32, bufferSize: Int = 3 * 4096) throws(VMMError) {
        let steps = try recording.steps(forVCPU: vcpu)
        guard !steps.isEmpty else { throw .invalidArgument("recording has no entries for vCPU \(vcpu)") }
        // A recording is a file: every byte it writes must land inside the buffer.
        for (i, step) in steps.enumerated() {
            for patch in step.writes where patch.offset < 0 || patch.offset > bufferSize || patch.bytes.count > bufferSize - patch.offset {
                throw .invalidArgument("recording: entry \(i) of vCPU \(vcpu) writes \(patch.bytes.count) bytes at offset \(patch.offset), outside kvm_run (\(bufferSize) bytes)")
            }
        }
        self.init(steps: steps, bufferSize: bufferSize)
        capturesEntries = false
    }
}
