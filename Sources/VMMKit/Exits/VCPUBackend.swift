import CKVM
import Glibc
import Synchronization
import SystemPackage

/// What the run loop drives: one entry into a guest, a `kvm_run`-sized buffer the
/// "kernel" writes its exit record into, and the register state handlers may read.
///
/// Two implementations: `KVMBackend` (a real vCPU fd and its mapped `kvm_run`) and
/// `ScriptedVCPU` (steps played from a test or a recording, for what the kernel cannot
/// be made to do on demand). Everything above `enter()` — poison, classification,
/// decoding, dispatch, completion — is the same code for both.
public protocol VCPUBackend: AnyObject, Sendable {
    /// The `kvm_run`-sized buffer shared with the kernel (or the script).
    var runBuffer: UnsafeMutableRawPointer { get }
    var runBufferSize: Int { get }
    /// The vCPU fd, or -1 for a backend without one.
    var fd: Int32 { get }
    /// One `KVM_RUN`: its return value and, when it is -1, errno.
    func enter() -> (rc: Int32, errno: Int32)
    func registers() throws(VMMError) -> Registers
    func setRegisters(_ regs: Registers) throws(VMMError)
    /// `KVM_TRANSLATE`: guest-physical address of a guest-virtual one, nil if unmapped.
    func translate(_ virtualAddress: UInt64) throws(VMMError) -> UInt64?
    /// Releases the backend's resources. A vCPU may still be entered afterwards (a
    /// handler that closed its own VM returns into its loop): the entry must then fail.
    func close()
    /// The error for an entry that returned -1 with `errno` other than EINTR, EAGAIN,
    /// EFAULT or EHWPOISON, worded by the backend that knows why (a script that ran out
    /// says so). Default: `.ioctlFailed("KVM_RUN", errno)`.
    func entryError(errno: Int32, vcpu: UInt32) -> VMMError
    /// The error for a request that needs the vCPU fd when `fd` is -1: closed, or a
    /// backend that never had one. Default: `.closed("vCPU <id>")`.
    func missingFDError(vcpu: UInt32) -> VMMError
}

extension VCPUBackend {
    public func entryError(errno: Int32, vcpu: UInt32) -> VMMError {
        .ioctlFailed(name: "KVM_RUN", errno: Errno(rawValue: errno))
    }

    public func missingFDError(vcpu: UInt32) -> VMMError { .closed("vCPU \(vcpu)") }
}

/// A real KVM vCPU: its fd and the `kvm_run` page mapped from it.
public final class KVMBackend: VCPUBackend, @unchecked Sendable {
    private let fdStorage: Atomic<Int32>
    public let runBuffer: UnsafeMutableRawPointer
    public let runBufferSize: Int
    let id: UInt32

    init(vmFD: Int32, id: UInt32, mmapSize: Int) throws(VMMError) {
        let fd = try ioctl(vmFD, CKVM_CREATE_VCPU, "KVM_CREATE_VCPU", value: UInt(id))
        let map = mmap(nil, mmapSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        guard let map, map != MAP_FAILED else {
            let err = Errno.current
            Glibc.close(fd)
            throw .systemCallFailed(name: "mmap of kvm_run for vCPU \(id)", errno: err)
        }
        self.id = id
        fdStorage = Atomic(fd)
        entryFD = fd
        runBuffer = map
        runBufferSize = mmapSize
        _ = FDPlaceholder.devNull
    }

    /// Unmaps `kvm_run` and closes the fd number `close()` kept reserved.
    deinit {
        munmap(runBuffer, runBufferSize)
        Glibc.close(entryFD)
    }

    /// The vCPU fd, or -1 once closed.
    public var fd: Int32 { fdStorage.load(ordering: .acquiring) }

    /// The number `enter()` uses, the same for the object's whole life: after `close()`
    /// it names /dev/null (KVM_RUN fails with ENOTTY, reported as `.closed`), so a loop
    /// or `run()` entering after close never reaches a file another VM opened meanwhile.
    private let entryFD: Int32

    @inline(__always)
    public func enter() -> (rc: Int32, errno: Int32) {
        let rc = ckvm_ioctl_value(entryFD, CKVM_RUN, 0)
        return (rc, rc < 0 ? ckvm_errno() : 0)
    }

    /// An entry after `close()` fails on the placeholder: that is `.closed`.
    public func entryError(errno: Int32, vcpu: UInt32) -> VMMError {
        if fd < 0 { return .closed("vCPU \(vcpu)") }
        return .ioctlFailed(name: "KVM_RUN", errno: Errno(rawValue: errno))
    }

    func liveFD() throws(VMMError) -> Int32 {
        let value = fd
        guard value >= 0 else { throw .closed("vCPU \(id)") }
        return value
    }

    public func registers() throws(VMMError) -> Registers {
        var r = kvm_regs()
        _ = try ioctl(try liveFD(), CKVM_GET_REGS, "KVM_GET_REGS", &r)
        return r
    }

    public func setRegisters(_ regs: Registers) throws(VMMError) {
        var r = regs
        _ = try ioctl(try liveFD(), CKVM_SET_REGS, "KVM_SET_REGS", &r)
    }

    public func translate(_ virtualAddress: UInt64) throws(VMMError) -> UInt64? {
        var t = kvm_translation()
        t.linear_address = virtualAddress
        _ = try ioctl(try liveFD(), CKVM_TRANSLATE, "KVM_TRANSLATE", &t)
        return t.valid != 0 ? t.physical_address : nil
    }

    /// Releases the vCPU: its fd number is taken over by /dev/null (the number stays
    /// reserved until deinit) and `kvm_run` stays mapped until deinit, so a thread still
    /// holding the vCPU (a handler that closed its own VM, a caller of `run()`) writes
    /// into a page nobody else uses and enters nothing. Without the placeholder (no
    /// /dev/null) the vCPU fd itself stays open until deinit.
    public func close() {
        let fd = fdStorage.exchange(-1, ordering: .acquiringAndReleasing)
        guard fd >= 0 else { return }
        _ = FDPlaceholder.takeOver(fd)
    }
}

/// A vCPU's backend, fixed for the life of this object, as the run loop calls it: the
/// loop borrows the object through an unmanaged reference, and calling through a `let`
/// of a borrowed object needs no retain. A real KVM vCPU is called directly (a final
/// class, so the ioctl inlines) instead of through the protocol's witness table.
final class BackendEntry {
    let backend: any VCPUBackend
    /// `backend` when it is a `KVMBackend`, unretained (`backend` keeps it alive): an
    /// optional binding of a strong reference would retain it on every entry.
    let kvm: Unmanaged<KVMBackend>?

    init(_ backend: any VCPUBackend) {
        self.backend = backend
        self.kvm = (backend as? KVMBackend).map { Unmanaged.passUnretained($0) }
    }

    /// One entry, for the general path (`run()`). The hot loop makes the same choice once
    /// per loop instead (`KVMEntry` or `BackendCall`, below): change both together.
    @inline(__always)
    func enter() -> (rc: Int32, errno: Int32) {
        if let kvm { return kvm._withUnsafeGuaranteedRef { $0.enter() } }
        return backend.enter()
    }
}

/// How the hot loop enters the guest (`VCPU.hotLoop`, specialised for each). A backend
/// is replaced only before its vCPU starts, so the choice holds for a whole loop.
protocol GuestEntry {
    func enter() -> (rc: Int32, errno: Int32)
}

/// Straight to `KVM_RUN` on a `KVMBackend` (kept alive by the vCPU's `BackendEntry`).
struct KVMEntry: GuestEntry {
    let kvm: Unmanaged<KVMBackend>

    @inline(__always)
    func enter() -> (rc: Int32, errno: Int32) { kvm._withUnsafeGuaranteedRef { $0.enter() } }
}

/// Through the protocol, for any other backend (scripted, replayed, a benchmark's).
/// The existential is read from the entry at each call: held in the loop as an
/// `unowned(unsafe)` existential, it was retained and released around every call.
struct BackendCall: GuestEntry {
    let entry: Unmanaged<BackendEntry>

    init(_ entry: Unmanaged<BackendEntry>) { self.entry = entry }

    @inline(__always)
    func enter() -> (rc: Int32, errno: Int32) { entry._withUnsafeGuaranteedRef { $0.backend.enter() } }
}
