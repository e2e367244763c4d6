import CKVM
import Glibc
import Synchronization

/// An irqfd (`KVM_IRQFD`): writing the eventfd pulses a GSI of the in-kernel irqchip
/// from any thread, without an ioctl on the VM fd or a vCPU exit. The reverse of an
/// ioeventfd, for devices that complete work on their own threads.
public final class IRQFD: @unchecked Sendable {
    public let gsi: UInt32
    private let fdStorage: Atomic<Int32>
    private weak var vm: VirtualMachine?

    init(vm: VirtualMachine, gsi: UInt32, fd: Int32) {
        self.vm = vm
        self.gsi = gsi
        self.fdStorage = Atomic(fd)
    }

    deinit { close() }

    public var fd: Int32 { fdStorage.load(ordering: .acquiring) }

    /// Raises the interrupt (an edge on the GSI). Safe from any thread.
    public func trigger() throws(VMMError) {
        let raw = fd
        guard raw >= 0 else { throw .closed("irqfd for GSI \(gsi)") }
        guard EventFD.signal(raw) else { throw .systemCallFailed(name: "write to irqfd for GSI \(gsi)", errno: .current) }
    }

    /// Unbinds the GSI and closes the eventfd. Idempotent.
    public func close() {
        let raw = fdStorage.exchange(-1, ordering: .acquiringAndReleasing)
        guard raw >= 0 else { return }
        // The number stays the VM's (or /dev/null's) while `vm` is held: read it once.
        if let vm, let vmfd = try? vm.liveFD() {
            var request = kvm_irqfd()
            request.fd = UInt32(bitPattern: raw)
            request.gsi = gsi
            request.flags = UInt32(KVM_IRQFD_FLAG_DEASSIGN)
            _ = try? ioctl(vmfd, CKVM_IRQFD, "KVM_IRQFD", &request)
        }
        Glibc.close(raw)
    }
}

extension VirtualMachine {
    /// Binds a new eventfd to GSI `gsi` of the in-kernel irqchip. Throws
    /// `.capabilityMissing` when the VM has no irqchip or the kernel lacks KVM_CAP_IRQFD.
    public func addIRQFD(gsi: UInt32) throws(VMMError) -> IRQFD {
        let vmfd = try liveFD()
        guard hasIRQChip else {
            throw .capabilityMissing(name: "an in-kernel irqchip (call createIRQChip() first)", what: "irqfd on GSI \(gsi)")
        }
        guard kvm.hasExtension(KVM_CAP_IRQFD) else {
            throw .capabilityMissing(name: "KVM_CAP_IRQFD", what: "irqfd on GSI \(gsi)")
        }
        guard gsi < Self.irqLines else {
            throw .invalidArgument("irqfd on GSI \(gsi): the in-kernel irqchip has GSIs 0 to \(Self.irqLines - 1)")
        }
        let raw = try EventFD.create("irqfd")
        var request = kvm_irqfd()
        request.fd = UInt32(bitPattern: raw)
        request.gsi = gsi
        do {
            _ = try ioctl(vmfd, CKVM_IRQFD, "KVM_IRQFD", &request)
        } catch {
            Glibc.close(raw)
            throw closedOr(error)
        }
        return IRQFD(vm: self, gsi: gsi, fd: raw)
    }
}
