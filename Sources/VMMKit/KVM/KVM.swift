import CKVM
import Glibc
import Synchronization
import SystemPackage

/// The KVM device (`/dev/kvm`): API version check, capability queries, VM creation.
public final class KVM: @unchecked Sendable {
    public static let defaultPath = "/dev/kvm"
    public static let apiVersion: Int32 = 12

    public let path: String
    /// The device fd; closed when the object goes away.
    public let fd: FileDescriptor
    /// Size of each vCPU's shared `kvm_run` mapping.
    public let vcpuMmapSize: Int
    /// Guest-physical address width the host CPU supports (CPUID 0x80000008), asked of
    /// the kernel on first use: `KVM_GET_SUPPORTED_CPUID` costs ~0.4 ms, which `open()`
    /// no longer pays for guests that never need it.
    public var physicalAddressBits: Int {
        let known = addressBits.load(ordering: .relaxed)
        if known != 0 { return known }
        var bits = 36
        if fd.rawValue >= 0, let cpuid = try? supportedCPUID(),
           let leaf = cpuid.first(where: { $0.function == 0x8000_0008 }) {
            bits = Int(leaf.eax & 0xff)
        }
        addressBits.store(bits, ordering: .relaxed)
        return bits
    }
    private let addressBits = Atomic<Int>(0)

    /// Opens the device. Fails with `.kvmUnavailable` (naming the path, the errno and
    /// what to do) or `.apiVersionMismatch`.
    public static func open(path: String = defaultPath) throws(VMMError) -> KVM {
        let raw = Glibc.open(path, O_RDWR | O_CLOEXEC)
        guard raw >= 0 else { throw .kvmUnavailable(path: path, errno: .current) }
        do throws(VMMError) {
            let version = try ioctl(raw, CKVM_GET_API_VERSION, "KVM_GET_API_VERSION")
            guard version == apiVersion else { throw VMMError.apiVersionMismatch(path: path, found: version) }
            let size = try ioctl(raw, CKVM_GET_VCPU_MMAP_SIZE, "KVM_GET_VCPU_MMAP_SIZE")
            let kvm = KVM(path: path, fd: raw, vcpuMmapSize: Int(size))
            return kvm
        } catch {
            Glibc.close(raw)
            throw error
        }
    }

    private init(path: String, fd: Int32, vcpuMmapSize: Int) {
        self.path = path
        self.fd = FileDescriptor(rawValue: fd)
        self.vcpuMmapSize = vcpuMmapSize
    }

    deinit { if fd.rawValue >= 0 { Glibc.close(fd.rawValue) } }

    /// A stand-in for replaying recorded runs where there is no /dev/kvm: it reports no
    /// capability, and anything that needs the kernel fails with EBADF.
    public static func unavailable() -> KVM {
        KVM(path: "(no KVM: replay)", fd: -1, vcpuMmapSize: 3 * 4096)
    }

    /// `KVM_CHECK_EXTENSION`: 0 when absent, else the capability's value.
    public func checkExtension(_ capability: Int32) -> Int32 {
        max(0, ckvm_ioctl_value(fd.rawValue, CKVM_CHECK_EXTENSION, UInt(capability)))
    }

    public func hasExtension(_ capability: Int32) -> Bool { checkExtension(capability) > 0 }

    /// `KVM_GET_SUPPORTED_CPUID`: what a vCPU can be given. Asked of the kernel once
    /// (~0.4 ms, and the same answer for the life of the fd), then copied: every vCPU's
    /// `configureCPUID` and a snapshot's CPUID check share it.
    public func supportedCPUID() throws(VMMError) -> [CPUIDEntry] {
        if let known = cpuidCache.withLock({ $0 }) { return known }
        let entries = try KVM.querySupportedCPUID(fd.rawValue)
        cpuidCache.withLock { $0 = entries }
        return entries
    }
    private let cpuidCache = Lock<[CPUIDEntry]?>(nil)

    private static func querySupportedCPUID(_ fd: Int32) throws(VMMError) -> [CPUIDEntry] {
        let buffer = UnsafeMutablePointer<ckvm_cpuid>.allocate(capacity: 1)
        defer { buffer.deallocate() }
        buffer.initialize(to: ckvm_cpuid())
        buffer.pointee.nent = UInt32(CKVM_MAX_CPUID_ENTRIES)
        _ = try ioctl(fd, CKVM_GET_SUPPORTED_CPUID, "KVM_GET_SUPPORTED_CPUID", UnsafeMutableRawPointer(buffer))
        return withUnsafeBytes(of: &buffer.pointee.entries) { raw in
            Array(raw.bindMemory(to: CPUIDEntry.self).prefix(Int(buffer.pointee.nent)))
        }
    }

    /// Creates a VM (type 0, the only type this host offers).
    public func createVM(type: UInt = 0) throws(VMMError) -> VirtualMachine {
        let vmfd = try ioctl(fd.rawValue, CKVM_CREATE_VM, "KVM_CREATE_VM", value: type)
        return VirtualMachine(kvm: self, fd: vmfd)
    }
}

public typealias CPUIDEntry = kvm_cpuid_entry2
