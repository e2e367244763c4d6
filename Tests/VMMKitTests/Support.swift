import Glibc
import GuestPayloads
import Testing
@testable import VMMKit

/// The skip rule: KVM suites run whenever /dev/kvm exists (then any failure to use it
/// fails the tests, so CI can never skip them silently) and are skipped, with this
/// reason printed, where it does not.
enum KVMAvailability {
    static let present = access(KVM.defaultPath, F_OK) == 0
    /// CI=true with /dev/kvm present: no KVM suite may skip.
    static let requiredByCI = present && getenv("CI").map { String(cString: $0) == "true" } == true
    static let reason: Comment = "/dev/kvm is missing on this machine: KVM suites skipped"
}

enum Payload {
    /// The machine code of a guest payload from Examples/Guests.
    static func bytes(_ name: String) -> [UInt8] {
        var size = 0
        guard let start = guest_payload(name, &size) else { fatalError("no guest payload named \(name)") }
        return Array(UnsafeBufferPointer(start: start, count: size))
    }
}

/// A VM with `memoryMiB` of RAM at 0, a payload at `GuestLayout.codeStart`, and
/// `vcpuCount` vCPUs in long mode at `ring`.
final class TestGuest {
    static let scratch: UInt64 = 0x20000
    static let mmioBase: UInt64 = 0xd000_0000
    let kvm: KVM
    let vm: VirtualMachine
    let dispatcher = ExitDispatcher()

    /// `irqchip`: the in-kernel PIC/IOAPIC/LAPICs, created before the vCPUs as KVM wants.
    init(_ payload: String, ring: Int = 0, vcpus vcpuCount: Int = 1, memoryMiB: UInt64 = 2,
         backing: MemoryRegion.Backing = .anonymous, irqchip: Bool = false) throws {
        kvm = try KVM.open()
        vm = try kvm.createVM()
        if irqchip { try vm.createIRQChip() }
        try vm.memory.addRegion(name: "ram", guestAddress: 0, size: memoryMiB << 20, backing: backing)
        try vm.memory.writeBytes(GuestLayout.codeStart, Payload.bytes(payload))
        for i in 0..<vcpuCount {
            let vcpu = try vm.createVCPU()
            try vcpu.setupLongMode(entry: GuestLayout.codeStart, stack: 0x80000 - UInt64(i) * 0x1000, ring: ring)
        }
    }

    var vcpu: VCPU { vm.vcpus[0] }

    func run() throws -> StopReason { try vm.run(dispatcher)[0] }

    deinit { vm.close() }
}

/// Thread-safe recorder for values seen by handlers.
final class Recorder<T>: @unchecked Sendable {
    private var items: [T] = []
    // Not a `Lock<[T]>`: its `sending` closures refuse a value of a non-Sendable `T`.
    private let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    init() { pthread_mutex_init(lock, nil) }
    deinit { pthread_mutex_destroy(lock); lock.deallocate() }
    func append(_ item: T) { pthread_mutex_lock(lock); items.append(item); pthread_mutex_unlock(lock) }
    var all: [T] { pthread_mutex_lock(lock); defer { pthread_mutex_unlock(lock) }; return items }
}

func sleepMilliseconds(_ ms: Int) { usleep(useconds_t(ms * 1000)) }
