import CUFFD
import Glibc
import GuestPayloads
import Testing
@testable import VMMKit
@testable import VMMPaging

/// A guest whose RAM (4 MiB at 0) is demand-paged from a snapshot file: the tables and
/// the code are written by the VMM (resident), every other page comes from the file.
final class PagedGuest {
    static let ramSize: UInt64 = 4 << 20
    let kvm: KVM
    let vm: VirtualMachine
    let dispatcher = ExitDispatcher()
    let snapshotPath: String
    let snapshot: [UInt8]
    var pager: DemandPager!
    /// Plugins loaded by a test's page source; closed after the VM.
    var plugins: PluginHost?
    private let low = Recorder<(UInt32, UInt32)>()
    private let high = Recorder<(UInt32, UInt32)>()
    let markers = Recorder<UInt32>()

    init(_ payload: String, ring: Int, vcpus: Int = 1, mode: DemandPager.Mode, attach: Bool = true,
         source: ((PagedGuest) throws -> any PageSource)? = nil,
         patchSnapshot: (inout [UInt8]) -> Void = { _ in }, setup: (inout Registers, Int) -> Void) throws {
        kvm = try KVM.open()
        vm = try kvm.createVM()
        try vm.memory.addRegion(name: "ram", guestAddress: 0, size: Self.ramSize, backing: .anonymous)
        try vm.memory.writeBytes(GuestLayout.codeStart, Payload.bytes(payload))
        var image = [UInt8](repeating: 0, count: Int(Self.ramSize))
        image.withUnsafeMutableBytes { raw in
            for i in 0..<(Int(Self.ramSize) / 8) { raw.storeBytes(of: Self.pattern(UInt64(i * 8)), toByteOffset: i * 8, as: UInt64.self) }
        }
        patchSnapshot(&image)
        snapshot = image
        snapshotPath = "/tmp/vmmkit-snapshot-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).mem"
        let file = fopen(snapshotPath, "w")!
        #expect(fwrite(image, 1, image.count, file) == image.count)
        fclose(file)
        for i in 0..<vcpus {
            let vcpu = try vm.createVCPU()
            try vcpu.setupLongMode(entry: GuestLayout.codeStart, stack: 0x80000, ring: ring)
            var regs = try vcpu.registers()
            setup(&regs, i)
            try vcpu.setRegisters(regs)
        }
        let pageSource = try source?(self) ?? SnapshotFilePageSource(path: snapshotPath)
        pager = try DemandPager(memory: vm.memory, region: "ram", source: pageSource, mode: mode)
        try dispatcher.registerPIO(port: 0x20, owner: "test") { [low] io, vcpu in low.append((vcpu.id, io.value)); return .handled }
        try dispatcher.registerPIO(port: 0x21, owner: "test") { [high] io, vcpu in high.append((vcpu.id, io.value)); return .handled }
        try dispatcher.registerPIO(port: 0x22, owner: "test") { [markers] io, _ in markers.append(io.value); return .handled }
        try dispatcher.registerPIO(port: 0xf4, owner: "test") { io, _ in .stop(.guestExit(code: Int32(bitPattern: io.value))) }
        if attach { try pager.attach(to: dispatcher, vcpus: vm.vcpus) }
    }

    deinit {
        vm.close()
        pager?.close()
        plugins?.close()
        unlink(snapshotPath)
    }

    /// The snapshot's qword at byte offset `offset`: a fixed scramble of the offset.
    static func pattern(_ offset: UInt64) -> UInt64 {
        var z = offset &+ 0x9e37_79b9_7f4a_7c15
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    func run() throws -> [StopReason] { try vm.run(dispatcher) }

    /// The 64-bit value vCPU `id` reported on ports 0x20/0x21.
    func reported(_ id: UInt32) -> UInt64? {
        guard let l = low.all.last(where: { $0.0 == id }), let h = high.all.last(where: { $0.0 == id }) else { return nil }
        return UInt64(h.1) << 32 | UInt64(l.1)
    }

    /// The sum `dp_checksum` computes over the snapshot.
    func expectedSum(from start: UInt64, to end: UInt64, stride: UInt64) -> UInt64 {
        var sum: UInt64 = 0
        var a = start
        while a < end { sum &+= snapshotQword(a); a += stride }
        return sum
    }

    func snapshotQword(_ offset: UInt64) -> UInt64 {
        snapshot.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: Int(offset), as: UInt64.self) }
    }
}

/// A page source that never delivers.
final class BrokenPageSource: PageSource, @unchecked Sendable {
    let attempts = Recorder<UInt64>()
    let requests = Recorder<PageRequest>()
    var name: String { "broken source" }
    func readPage(at gpa: UInt64, into buffer: UnsafeMutableRawBufferPointer, for request: PageRequest) throws(VMMError) {
        attempts.append(gpa)
        requests.append(request)
        throw .systemCallFailed(name: "fetch of page 0x\(String(gpa, radix: 16))", errno: .connectionReset)
    }
}

/// The skip rule for paging suites: userfaultfd must be usable by this process
/// (root, or vm.unprivileged_userfaultfd=1). Where it is not, they are skipped with this
/// reason printed, like the KVM suites without /dev/kvm.
enum UserfaultfdAvailability {
    /// In CI with /dev/kvm present the paging suites always run (and fail if userfaultfd
    /// is refused): a skipped KVM suite there would hide a broken machine.
    static let present: Bool = {
        let fd = cuffd_open(Int32(CUFFD_CLOEXEC))
        if fd >= 0 { close(fd) }
        return fd >= 0 || KVMAvailability.requiredByCI
    }()
    static let reason: Comment = "userfaultfd is not permitted here (set vm.unprivileged_userfaultfd=1 or run as root): paging suites skipped"
}

/// Wraps a source so that only the faulting vCPU's thread may call it (the default for a
/// `PageSource`): the pager then kicks vCPUs to resolve their own ring-3 faults.
final class VCPUThreadSource: PageSource, @unchecked Sendable {
    let inner: any PageSource
    init(_ inner: any PageSource) { self.inner = inner }
    var name: String { inner.name }
    func readPage(at gpa: UInt64, into buffer: UnsafeMutableRawBufferPointer, for request: PageRequest) throws(VMMError) {
        try inner.readPage(at: gpa, into: buffer, for: request)
    }
}
