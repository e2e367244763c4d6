import Glibc
import VMMKit

/// A snapshot directory opened for restore: the manifest, every state file read and
/// verified (size, checksum, records), the memory file opened read-only and its size
/// checked, and its page sums (`memory.sums`) opened to check each page as it is read.
/// Opening changes nothing on disk.
public final class SnapshotImage: @unchecked Sendable {
    public let path: String
    public let manifest: SnapshotManifest
    public let state: VMState
    public let devices: [DeviceState]
    /// Pages to prefetch at restore (guest-physical, page aligned), if recorded.
    public let workingSet: [UInt64]
    let memoryFD: Int32
    /// `memory.sums` (format 2), checking each page a restore reads.
    let sums: MemorySumsFile?
    public var memoryPath: String { path + "/" + SnapshotManifest.memoryFileName }

    public init(path: String) throws(SnapshotError) {
        self.path = path
        let manifest = try SnapshotManifest.parse(
            try SnapshotFiles.read(path + "/manifest", limit: SnapshotManifest.maxSize, in: path), path: path + "/manifest")
        func load(_ f: SnapshotManifest.FileEntry) throws(SnapshotError) -> [UInt8] {
            let file = path + "/" + f.name
            let bytes = try SnapshotFiles.read(file, limit: SnapshotManifest.maxStateFileSize, in: path)
            guard UInt64(bytes.count) == f.size else {
                throw .invalid(path: path, "\(f.name) has \(bytes.count) bytes; the manifest says \(f.size) (truncated or replaced)")
            }
            let sum = bytes.withUnsafeBytes(fnv1a64)
            guard sum == f.checksum else {
                throw .invalid(path: path, "\(f.name) is corrupt: checksum \(hex(sum)), the manifest says \(hex(f.checksum))")
            }
            return bytes
        }
        var state = VMState(irqchip: nil, pit: nil, clock: nil, regions: manifest.regions, vcpus: [])
        try state.decodeDevices(try load(manifest.stateFiles[0]), path: path + "/vm.state")
        for (i, f) in manifest.stateFiles.dropFirst().enumerated() {
            let v = try VCPUState.decode(try load(f), id: UInt32(i), path: path + "/" + f.name)
            if let missing = v.missingState(irqchip: state.irqchip != nil, capabilities: Set(manifest.capabilities)) {
                throw .invalid(path: path + "/" + f.name, missing)
            }
            state.vcpus.append(v)
        }
        self.workingSet = try manifest.workingSet.map { w throws(SnapshotError) in
            try Self.workingSet(try load(w), regions: manifest.regions, path: path + "/" + w.name)
        } ?? []
        self.devices = try manifest.devices.map { d throws(SnapshotError) in DeviceState(name: d.name, version: d.version, bytes: try load(d.file)) }
        let memory = path + "/" + SnapshotManifest.memoryFileName
        let (fd, size) = try SnapshotFiles.openForReading(memory, in: path)
        guard size == manifest.memorySize else {
            close(fd)
            throw .invalid(path: path, "\(SnapshotManifest.memoryFileName) has \(size) bytes; the manifest says \(manifest.memorySize) (truncated?)")
        }
        do throws(SnapshotError) {
            sums = manifest.memorySums ? try MemorySumsFile(dir: path, memorySize: size) : nil
        } catch {
            close(fd)
            throw error
        }
        self.memoryFD = fd
        self.manifest = manifest
        self.state = state
    }

    deinit { close(memoryFD) }

    /// A `working-set` file's pages: `u32 count`, then `count` page-aligned guest-physical
    /// addresses, each inside one of `regions` (which never overlap).
    static func workingSet(_ bytes: [UInt8], regions: [RegionLayout], path: String) throws(SnapshotError) -> [UInt64] {
        var r = ByteReader(bytes, path: path)
        let count = Int(try r.read(UInt32.self))
        guard r.remaining == count * 8 else { throw r.fail("working set counts \(count) pages but holds \(r.remaining) bytes") }
        var pages: [UInt64] = []
        pages.reserveCapacity(count)
        let spans = RegionSpans(regions)
        for _ in 0..<count {
            let gpa: UInt64 = try r.read()
            guard spans.holdsPage(gpa) else { throw r.fail("working-set page \(hex(gpa)) is not a page of a region") }
            pages.append(gpa)
        }
        return pages
    }

    /// What a vCPU given the supported CPUID actually reports on this host. Some hosts
    /// (kvm_pvm, whose ring 3 runs natively) report the real CPU's features there,
    /// beyond `KVM_GET_SUPPORTED_CPUID`; a snapshot taken on such a host has them.
    /// The host's effective CPUID, probed once per process (a throwaway VM and vCPU:
    /// about 3 ms here, most of a lazy restore's own cost); the host does not change.
    private static let effectiveCache = Lock<[CPUIDEntry]?>(nil)

    static func effectiveCPUID(_ kvm: KVM) throws(SnapshotError) -> [CPUIDEntry] {
        if let cached = effectiveCache.withLock({ $0 }) { return cached }
        let entries = try probeEffectiveCPUID(kvm)
        effectiveCache.withLock { $0 = entries }
        return entries
    }

    static func probeEffectiveCPUID(_ kvm: KVM) throws(SnapshotError) -> [CPUIDEntry] {
        do {
            let vm = try kvm.createVM()
            defer { vm.close() }
            let vcpu = try vm.createVCPU()
            try vcpu.configureCPUID(kvm)
            return try VCPUState.captureCPUID(vcpu.fd)
        } catch let error as SnapshotError {
            throw error
        } catch let error as VMMError {
            throw .system(error)
        } catch {
            throw .refused("\(error)")
        }
    }

    /// Refuses, naming the first mismatch, a snapshot this host cannot honour: a KVM
    /// capability it lacks or a CPUID feature it cannot offer.
    public func checkCompatibility(with kvm: KVM) throws(SnapshotError) {
        for name in manifest.capabilities {
            guard let cap = StateCapability(rawValue: name), kvm.hasExtension(cap.number) else {
                throw .incompatible(path: path, "this kernel lacks \(name), which the snapshot's state needs")
            }
        }
        let supported: [CPUIDEntry]
        do { supported = try kvm.supportedCPUID() } catch { throw .system(error) }
        // What a configured vCPU reports costs a throwaway VM: asked only when the
        // supported list alone disagrees (on kvm_pvm it always does: leaf 1 ECX).
        var effective: [CPUIDEntry]?
        for v in state.vcpus where CPUIDCompatibility.firstMismatch(saved: v.cpuid, supported: supported) != nil {
            if effective == nil { effective = try Self.effectiveCPUID(kvm) }
            if let mismatch = CPUIDCompatibility.firstMismatch(saved: v.cpuid, supported: supported, effective: effective!) {
                throw .incompatible(path: path, "vCPU \(v.id): \(mismatch)")
            }
        }
    }
}

/// Whether an address is a page of one of a snapshot's regions (which never overlap):
/// a binary search over them sorted, so that up to 2^21 working-set pages against up
/// to 512 regions stay far from a hang.
struct RegionSpans {
    private let spans: [(start: UInt64, size: UInt64)]

    init(_ regions: [RegionLayout]) { spans = regions.map { ($0.guestAddress, $0.size) }.sorted { $0.start < $1.start } }

    func holdsPage(_ gpa: UInt64) -> Bool {
        var (low, high) = (0, spans.count) // the first region starting above gpa
        while low < high {
            let mid = (low + high) / 2
            if spans[mid].start <= gpa { low = mid + 1 } else { high = mid }
        }
        return gpa % GuestMemory.pageSize == 0 && low > 0 && gpa - spans[low - 1].start < spans[low - 1].size
    }
}

