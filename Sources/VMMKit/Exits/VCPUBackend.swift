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
    /// `enter()` as a C function, or nil (the default). When set, the run loop calls it
    /// instead of `enter()`, with no protocol witness in between: `KVMBackend`'s
    /// `KVM_RUN`, or any backend whose entry is C. Read once, when the backend is set.
    var entryFunction: VCPUEntryFunction? { get }
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
    public var entryFunction: VCPUEntryFunction? { nil }

    public func entryError(errno: Int32, vcpu: UInt32) -> VMMError {
        .ioctlFailed(name: "KVM_RUN", errno: Errno(rawValue: errno))
    }

    public func missingFDError(vcpu: UInt32) -> VMMError { .closed("vCPU \(vcpu)") }
}

/// A backend's entry as a C function (`VCPUBackend.entryFunction`): it returns what
/// `KVM_RUN` would, and leaves errno set when it returns -1. `context` must stay valid
/// for the backend's life.
public struct VCPUEntryFunction: @unchecked Sendable {
    public typealias Function = @convention(c) (UnsafeMutableRawPointer?) -> Int32
    public let function: Function
    public let context: UnsafeMutableRawPointer?

    public init(_ function: Function, context: UnsafeMutableRawPointer?) {
        self.function = function
        self.context = context
    }

    @inline(__always)
    func callAsFunction() -> (rc: Int32, errno: Int32) {
        let rc = function(context)
        return (rc, rc < 0 ? ckvm_errno() : 0)
    }
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
        entryFDCell = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
        entryFDCell.initialize(to: fd)
        runBuffer = map
        runBufferSize = mmapSize
        _ = FDPlaceholder.devNull
    }

    /// Unmaps `kvm_run` and closes the fd number `close()` kept reserved.
    deinit {
        munmap(runBuffer, runBufferSize)
        Glibc.close(entryFD)
        entryFDCell.deallocate()
    }

    /// The vCPU fd, or -1 once closed.
    public var fd: Int32 { fdStorage.load(ordering: .acquiring) }

    /// The number `enter()` uses, the same for the object's whole life: after `close()`
    /// it names /dev/null (KVM_RUN fails with ENOTTY, reported as `.closed`), so a loop
    /// or `run()` entering after close never reaches a file another VM opened meanwhile.
    private var entryFD: Int32 { entryFDCell.pointee }
    /// Where `ckvm_run_entry` reads `entryFD` (the entry's context).
    private let entryFDCell: UnsafeMutablePointer<Int32>
    /// `KVM_RUN` as the C function the run loop calls for every C-entered backend.
    private var entry: VCPUEntryFunction { VCPUEntryFunction(ckvm_run_entry, context: entryFDCell) }

    public func enter() -> (rc: Int32, errno: Int32) { entry() }

    public var entryFunction: VCPUEntryFunction? { entry }

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
/// of a borrowed object needs no retain. A backend with a C entry (`KVMBackend`'s
/// `KVM_RUN`) is called through it, instead of through the protocol's witness table.
final class BackendEntry {
    let backend: any VCPUBackend
    let function: VCPUEntryFunction?

    init(_ backend: any VCPUBackend) {
        self.backend = backend
        function = backend.entryFunction
    }

    /// One entry, for the general path (`run()`). The hot loop makes the same choice once
    /// per loop instead (`FunctionEntry` or `BackendCall`, below): change both together.
    @inline(__always)
    func enter() -> (rc: Int32, errno: Int32) {
        if let function { return function() }
        return backend.enter()
    }
}

/// How the hot loop enters the guest (`VCPU.hotLoop`, specialised for each). A backend
/// is replaced only before its vCPU starts, so the choice holds for a whole loop.
/// `enter` returns the entry's rc and leaves errno set when it is -1: the loop reads
/// errno only then, off the path of an exit (as a pair, rc and errno cost 4
/// instructions an exit, callgrind).
protocol GuestEntry {
    func enter() -> Int32
}

/// A backend's C entry (`KVMBackend`'s `KVM_RUN`, a benchmark's stand-in kernel): one
/// call through a pointer, as a C VMM's loop would make it.
struct FunctionEntry: GuestEntry {
    let function: VCPUEntryFunction

    @inline(__always)
    func enter() -> Int32 { function.function(function.context) }
}

/// Through the protocol, for any other backend (scripted, replayed).
/// The existential is read from the entry at each call: held in the loop as an
/// `unowned(unsafe)` existential, it was retained and released around every call.
struct BackendCall: GuestEntry {
    let entry: Unmanaged<BackendEntry>

    init(_ entry: Unmanaged<BackendEntry>) { self.entry = entry }

    @inline(__always)
    func enter() -> Int32 {
        let (rc, err) = entry._withUnsafeGuaranteedRef { $0.backend.enter() }
        if rc < 0 { errno = err }
        return rc
    }
}
