import CKVM
import Glibc
import Synchronization

/// An ioeventfd doorbell (`KVM_IOEVENTFD`): guest writes to one address complete inside
/// the kernel, with no vCPU exit, and bump an eventfd counter instead. The owner learns
/// of them by polling (`consume()`), blocking (`wait(timeoutMilliseconds:)`) or from an
/// `EventNotifier` thread. Writes that do not match (other length, other datamatch
/// value) still exit to the run loop as ordinary writes.
public final class IOEventFD: @unchecked Sendable {
    public let space: IOSpace
    public let address: UInt64
    /// Access size that matches: 1, 2, 4 or 8; 0 = any size.
    public let length: UInt32
    /// Only writes of exactly this value signal, when set.
    public let datamatch: UInt64?
    private let fdStorage: Atomic<Int32>
    private weak var vm: VirtualMachine?

    init(vm: VirtualMachine, space: IOSpace, address: UInt64, length: UInt32, datamatch: UInt64?, fd: Int32) {
        self.vm = vm
        self.space = space
        self.address = address
        self.length = length
        self.datamatch = datamatch
        self.fdStorage = Atomic(fd)
    }

    deinit { close() }

    /// The eventfd, or -1 once closed. Readable when the guest rang the doorbell.
    public var fd: Int32 { fdStorage.load(ordering: .acquiring) }

    /// Writes since the last call, without blocking (0 when none).
    public func consume() -> UInt64 { EventFD.read(fd) }

    /// Blocks up to `timeoutMilliseconds` (-1: forever) for the doorbell; returns the
    /// writes since the last read, 0 on timeout.
    public func wait(timeoutMilliseconds: Int32) -> UInt64 {
        EventFD.wait(fd, timeoutMilliseconds: timeoutMilliseconds)
    }

    /// Unbinds the doorbell (later writes exit normally) and closes the eventfd. Idempotent.
    public func close() {
        let raw = fdStorage.exchange(-1, ordering: .acquiringAndReleasing)
        guard raw >= 0 else { return }
        // The number stays the VM's (or /dev/null's) while `vm` is held: read it once.
        if let vm, let vmfd = try? vm.liveFD() {
            var request = VirtualMachine.ioeventfdRequest(space: space, address: address, length: length,
                                                         datamatch: datamatch, fd: raw)
            request.flags |= CKVM_IOEVENTFD_FLAG_DEASSIGN
            _ = try? ioctl(vmfd, CKVM_IOEVENTFD, "KVM_IOEVENTFD", &request)
        }
        Glibc.close(raw)
    }
}

extension VirtualMachine {
    /// Binds a new doorbell eventfd to guest writes of `length` bytes (1, 2, 4, 8, or 0
    /// for any size) at `address`, optionally only for the value `datamatch`.
    /// Throws `.capabilityMissing` naming KVM_CAP_IOEVENTFD when the kernel lacks it.
    public func addIOEventFD(space: IOSpace, address: UInt64, length: UInt32,
                             datamatch: UInt64? = nil) throws(VMMError) -> IOEventFD {
        let vmfd = try liveFD()
        guard kvm.hasExtension(KVM_CAP_IOEVENTFD) else {
            throw .capabilityMissing(name: "KVM_CAP_IOEVENTFD", what: "ioeventfd doorbells")
        }
        guard [0, 1, 2, 4, 8].contains(length) else {
            throw .invalidArgument("ioeventfd at \(space.rawValue) \(hex(address)): length \(length) is not 0, 1, 2, 4 or 8")
        }
        if length == 0 {
            if datamatch != nil {
                throw .invalidArgument("ioeventfd at \(space.rawValue) \(hex(address)): datamatch needs a length of 1, 2, 4 or 8")
            }
            let cap = space == .pio ? KVM_CAP_IOEVENTFD_ANY_LENGTH : KVM_CAP_IOEVENTFD_NO_LENGTH
            guard kvm.hasExtension(cap) else {
                throw .capabilityMissing(name: space == .pio ? "KVM_CAP_IOEVENTFD_ANY_LENGTH" : "KVM_CAP_IOEVENTFD_NO_LENGTH",
                                         what: "an ioeventfd of any length")
            }
        }
        if space == .pio, address > 0xffff {
            throw .invalidArgument("ioeventfd: port \(hex(address)) is past port 0xffff")
        }
        let raw = try EventFD.create("ioeventfd")
        var request = Self.ioeventfdRequest(space: space, address: address, length: length, datamatch: datamatch, fd: raw)
        do {
            _ = try ioctl(vmfd, CKVM_IOEVENTFD, "KVM_IOEVENTFD", &request)
        } catch {
            Glibc.close(raw)
            throw closedOr(error)
        }
        return IOEventFD(vm: self, space: space, address: address, length: length, datamatch: datamatch, fd: raw)
    }

    static func ioeventfdRequest(space: IOSpace, address: UInt64, length: UInt32, datamatch: UInt64?, fd: Int32) -> kvm_ioeventfd {
        var request = kvm_ioeventfd()
        request.addr = address
        request.len = length
        request.fd = fd
        if space == .pio { request.flags |= CKVM_IOEVENTFD_FLAG_PIO }
        if let datamatch {
            request.flags |= CKVM_IOEVENTFD_FLAG_DATAMATCH
            request.datamatch = datamatch
        }
        return request
    }
}

/// eventfd(2) helpers shared by ioeventfd, irqfd and the notifier.
enum EventFD {
    static func create(_ what: String) throws(VMMError) -> Int32 {
        let raw = ckvm_eventfd(0, CKVM_EFD_CLOEXEC | CKVM_EFD_NONBLOCK)
        guard raw >= 0 else { throw .systemCallFailed(name: "eventfd for \(what)", errno: .current) }
        return raw
    }

    /// The counter (which the read resets), or 0 when it is zero or the fd is closed.
    static func read(_ fd: Int32) -> UInt64 {
        guard fd >= 0 else { return 0 }
        var value: UInt64 = 0
        while true {
            let n = Glibc.read(fd, &value, 8)
            if n == 8 { return value }
            if n < 0, errno == EINTR { continue }
            return 0
        }
    }

    static func signal(_ fd: Int32, _ value: UInt64 = 1) -> Bool {
        var v = value
        while true {
            let n = Glibc.write(fd, &v, 8)
            if n == 8 { return true }
            if n < 0, errno == EINTR { continue }
            return false
        }
    }

    static func wait(_ fd: Int32, timeoutMilliseconds: Int32) -> UInt64 {
        guard fd >= 0 else { return 0 }
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        while true {
            let rc = poll(&p, 1, timeoutMilliseconds)
            if rc < 0, errno == EINTR { continue }
            return rc > 0 ? read(fd) : 0
        }
    }
}
