import CKVM
import Glibc
import Synchronization

/// Coalesced MMIO/PIO (`KVM_REGISTER_COALESCED_MMIO`): guest writes to a registered
/// write-only range are queued by the kernel in a ring shared by all vCPUs instead of
/// exiting one by one. The vCPU loop replays them, in guest order, as ordinary write
/// exits to the handlers of that range before it dispatches any other exit of that
/// vCPU and before it stops, so a device cannot tell the difference except in speed.
///
/// Only for ranges whose writes have no effect the guest can observe before its next
/// exit (a UART THR, a log port): reads of the range still exit normally.
public final class CoalescedRing: @unchecked Sendable {
    public struct Zone: Sendable, Equatable, CustomStringConvertible {
        public let space: IOSpace
        public let address: UInt64
        public let length: UInt32

        /// Registered zones never end past 2^64 (`registerCoalesced`).
        func overlaps(_ other: Zone) -> Bool {
            address < other.address &+ UInt64(other.length) && other.address < address &+ UInt64(length)
        }

        public var description: String { "[\(hex(address))..<\(hex(address &+ UInt64(length)))]" }
    }

    /// Set once a zone is registered (and never cleared). The run loop reads it at its
    /// top, before it enters its hot path, which does not drain the ring: registering
    /// pokes every vCPU of the VM (`VCPUControl.poke`), so one in the hot path leaves
    /// it after its exit in progress.
    let active = Atomic<Bool>(false)
    /// Drainers take this so two vCPUs never replay the same entry or reorder entries.
    private let drainLock = Lock<Void>(())
    private let zoneList = Lock<[Zone]>([])
    private let replayedCount = Atomic<UInt64>(0)
    /// Page index of the ring inside each vCPU's mapping (the capability's value).
    private(set) var pageOffset = 0
    let capacity: UInt32 = ckvm_coalesced_ring_capacity(UInt32(sysconf(Int32(_SC_PAGESIZE))))

    init() {}

    public var zones: [Zone] { zoneList.withLock { $0 } }

    /// Writes replayed from the ring so far (each one an exit saved).
    public var replayed: UInt64 { replayedCount.load(ordering: .relaxed) }

    /// Registers `zone` with `register` (the ioctl) unless it overlaps one already
    /// registered in its space: the kernel takes overlapping zones, then drops every zone
    /// in the range at one unregister, so one plugin's cleanup ended another's coalescing.
    func add(_ zone: Zone, pageOffset: Int, _ register: () throws(VMMError) -> Void) throws(VMMError) {
        try zoneList.withLock { (list: inout [Zone]) throws(VMMError) in
            if let other = list.first(where: { $0.space == zone.space && $0.overlaps(zone) }) {
                throw .invalidArgument("coalesced \(zone.space.rawValue) zone \(zone) overlaps zone \(other), registered before")
            }
            try register()
            self.pageOffset = pageOffset
            list.append(zone)
        }
        active.store(true, ordering: .releasing)
    }

    /// Unregisters `zone` with `unregister` if it is one registered; the kernel answers 0
    /// for any zone, so only this list can say a zone was not there.
    func remove(_ zone: Zone, _ unregister: () throws(VMMError) -> Void) throws(VMMError) {
        try zoneList.withLock { (list: inout [Zone]) throws(VMMError) in
            guard let i = list.firstIndex(of: zone) else {
                throw .invalidArgument("coalesced \(zone.space.rawValue) zone \(zone) is not registered")
            }
            try unregister()
            list.remove(at: i)
        }
    }

    /// Replays every queued write through `dispatcher` on `vcpu`'s thread. Returns the
    /// first stop a handler asked for (the rest of the ring stays queued, as writes the
    /// guest made after the device stopped it), or nil.
    func drain(_ dispatcher: ExitDispatcher, on vcpu: VCPU) -> StopReason? {
        let ring = (UnsafeMutableRawPointer(vcpu.runPage) + pageOffset * Int(sysconf(Int32(_SC_PAGESIZE))))
            .assumingMemoryBound(to: kvm_coalesced_mmio_ring.self)
        guard ckvm_coalesced_ring_pending(ring) != 0 else { return nil }
        return drainLock.withLock { _ -> StopReason? in
            var entry = kvm_coalesced_mmio()
            var data: UInt64 = 0
            while ckvm_coalesced_ring_peek(ring, capacity, &entry) != 0 {
                let length = min(Int(entry.len), 8)
                data = 0
                withUnsafeMutableBytes(of: &data) { dst in
                    withUnsafeBytes(of: entry.data) { dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[0..<length])) }
                }
                replayedCount.add(1, ordering: .relaxed)
                let verdict = withUnsafeMutableBytes(of: &data) { bytes -> ExitVerdict in
                    var exit: VMExit
                    if ckvm_coalesced_entry_is_pio(&entry) != 0 {
                        exit = .io(PIOAccess(port: UInt16(truncatingIfNeeded: entry.phys_addr), size: length, count: 1,
                                             isWrite: true, data: UnsafeMutableRawBufferPointer(rebasing: bytes[0..<length])))
                    } else {
                        exit = .mmio(MMIOAccess(address: entry.phys_addr, length: length, isWrite: true,
                                                data: UInt64(littleEndian: bytes.load(as: UInt64.self))))
                    }
                    return dispatcher.dispatch(&exit, on: vcpu)
                }
                // Freed only now: a vCPU that finds the ring non-empty waits on the lock
                // until this write is handled, so its own next exit cannot overtake it.
                ckvm_coalesced_ring_pop(ring, capacity)
                switch verdict {
                case .handled, .notMine, .backingReplaced: continue
                case let .stop(reason): return reason
                case let .fail(message): return .handlerFailed(message)
                }
            }
            return nil
        }
    }
}

/// The address space of a coalesced zone or an ioeventfd.
public enum IOSpace: String, Sendable, Equatable {
    case pio, mmio
}

extension VirtualMachine {
    /// Queues guest writes to [address, address+length) in the kernel instead of
    /// exiting per write; the vCPU loops replay them in order to the range's handlers.
    /// Throws `.capabilityMissing` naming KVM_CAP_COALESCED_MMIO when the kernel lacks it.
    public func registerCoalescedMMIO(address: UInt64, length: UInt32) throws(VMMError) {
        try registerCoalesced(CoalescedRing.Zone(space: .mmio, address: address, length: length))
    }

    /// The same for ports [port, port+count) (`KVM_CAP_COALESCED_PIO`).
    public func registerCoalescedPIO(port: UInt16, count: UInt16 = 1) throws(VMMError) {
        guard UInt32(port) + UInt32(count) <= 0x10000 else {
            throw .invalidArgument("coalesced PIO: port range \(hex(port))+\(count) runs past port 0xffff")
        }
        try registerCoalesced(CoalescedRing.Zone(space: .pio, address: UInt64(port), length: UInt32(count)))
    }

    /// Undoes a registration; later writes exit normally again.
    public func unregisterCoalesced(space: IOSpace, address: UInt64, length: UInt32) throws(VMMError) {
        let zone = CoalescedRing.Zone(space: space, address: address, length: length)
        var request = Self.zoneRequest(zone)
        try coalescedRing.remove(zone) { () throws(VMMError) in
            _ = try vmIOCTL(CKVM_UNREGISTER_COALESCED_MMIO, "KVM_UNREGISTER_COALESCED_MMIO", &request)
        }
    }

    private func registerCoalesced(_ zone: CoalescedRing.Zone) throws(VMMError) {
        let pageOffset = Int(kvm.checkExtension(KVM_CAP_COALESCED_MMIO))
        guard pageOffset > 0 else {
            throw .capabilityMissing(name: "KVM_CAP_COALESCED_MMIO", what: "coalesced \(zone.space == .pio ? "PIO" : "MMIO") writes")
        }
        if zone.space == .pio, !kvm.hasExtension(KVM_CAP_COALESCED_PIO) {
            throw .capabilityMissing(name: "KVM_CAP_COALESCED_PIO", what: "coalesced PIO writes")
        }
        guard zone.length > 0 else {
            throw .invalidArgument("coalesced \(zone.space.rawValue) zone at \(hex(zone.address)): length must be at least 1")
        }
        // The kernel takes a longer zone and never coalesces a write in it (measured on
        // 6.18: the length becomes a negative int); nor may a zone end past 2^64.
        guard zone.length <= 0x7fff_ffff, zone.address <= UInt64.max - UInt64(zone.length) else {
            throw .invalidArgument("coalesced \(zone.space.rawValue) zone at \(hex(zone.address)) of \(zone.length) bytes: at most 0x7fffffff, ending below 2^64")
        }
        guard (pageOffset + 1) * Int(sysconf(Int32(_SC_PAGESIZE))) <= kvm.vcpuMmapSize else {
            throw .invalidArgument("coalesced ring page \(pageOffset) lies outside the vCPU mapping (\(kvm.vcpuMmapSize) bytes)")
        }
        var request = Self.zoneRequest(zone)
        try coalescedRing.add(zone, pageOffset: pageOffset) { () throws(VMMError) in
            _ = try vmIOCTL(CKVM_REGISTER_COALESCED_MMIO, "KVM_REGISTER_COALESCED_MMIO", &request)
        }
        for vcpu in vcpus { vcpu.control.poke() }
    }

    private static func zoneRequest(_ zone: CoalescedRing.Zone) -> kvm_coalesced_mmio_zone {
        var request = kvm_coalesced_mmio_zone()
        request.addr = zone.address
        request.size = zone.length
        ckvm_coalesced_zone_set_pio(&request, zone.space == .pio ? 1 : 0)
        return request
    }
}
