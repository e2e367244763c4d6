import CKVM
import Glibc
import SystemPackage

/// Guest-physical memory of one VM: the regions (memslots) and bounds-checked access.
///
/// Regions change on the control thread; lookups and accesses may come from any vCPU
/// thread. The table is kept sorted by address so a lookup is a binary search; accesses
/// read a published snapshot of it and take no lock (`RegionLookup`).
public final class GuestMemory: @unchecked Sendable {
    public static let pageSize: UInt64 = 4096
    private let vmFD: Int32
    private let kvm: KVM?
    /// The regions, or nil once `close()` ran: the VM fd is gone then (and its number may
    /// already belong to another VM), so nothing may reach it again.
    private let regionTable = Lock<[MemoryRegion]?>([])
    /// What accesses read, without the mutex (RegionLookup.swift).
    private let lookup = RegionLookup()

    init(vmFD: Int32, kvm: KVM?) {
        self.vmFD = vmFD
        self.kvm = kvm
    }

    deinit { close() }

    /// Guest memory with no VM behind it, for scripted and replayed vCPUs: regions are
    /// plain host mappings (no memslots), so handlers can be tested without /dev/kvm.
    public static func detached() -> GuestMemory { GuestMemory(vmFD: -1, kvm: nil) }

    /// All regions, sorted by guest address.
    public var regions: [MemoryRegion] { regionTable.withLock { $0 ?? [] } }

    /// Adds a RAM region. Refuses zero-sized, unaligned, out-of-range and overlapping
    /// regions (naming both) before anything is mapped; on any later failure everything
    /// mapped or opened for it is released again. Throws `.closed("virtual machine")` once
    /// the VM was closed.
    @discardableResult
    public func addRegion(
        name: String, guestAddress: UInt64, size: UInt64, backing: MemoryRegion.Backing = .anonymous,
        readOnly: Bool = false, logDirty: Bool = false
    ) throws(VMMError) -> MemoryRegion {
        let wanted = "'\(name)' [\(hex(guestAddress))..<\(hex(guestAddress &+ size))]"
        guard size > 0 else { throw .invalidMemoryRegion("memory region '\(name)' at \(hex(guestAddress)) has size zero") }
        guard guestAddress % Self.pageSize == 0, size % Self.pageSize == 0 else {
            throw .invalidMemoryRegion("memory region \(wanted) is not aligned to the 4 KiB page size (address and size must both be multiples of 0x1000)")
        }
        // Every x86-64 CPU has at least 36 physical address bits: only a region reaching
        // past 64 GiB needs the host's width (KVM_GET_SUPPORTED_CPUID, ~0.4 ms).
        let end = guestAddress.addingReportingOverflow(size)
        let bits = !end.overflow && end.partialValue <= 1 << 36 ? 36 : kvm?.physicalAddressBits ?? 52
        let limit: UInt64 = 1 << UInt64(bits)
        guard guestAddress < limit, size <= limit - guestAddress else {
            throw .invalidMemoryRegion("memory region \(wanted) lies outside the \(bits)-bit guest-physical address space (limit \(hex(limit)))")
        }
        if backing == .guestMemfd && readOnly {
            throw .invalidMemoryRegion("memory region \(wanted): a guest_memfd region cannot be read-only")
        }
        return try regionTable.withLock { tableOrNil throws(VMMError) -> MemoryRegion in
            guard var table = tableOrNil else { throw .closed("virtual machine") }
            defer { tableOrNil = table }
            if let other = table.first(where: { $0.overlaps(guestAddress, size) }) {
                throw .invalidMemoryRegion("memory region \(wanted) overlaps region \(other)")
            }
            if let other = table.first(where: { $0.name == name }) {
                throw .invalidMemoryRegion("memory region \(wanted): the name is already used by region \(other)")
            }
            let used = Set(table.map(\.slot)) // the lowest free slot, without a search of the table per candidate
            let slot = (0...).first { !used.contains(UInt32($0)) }!
            let region = try Self.map(vmFD: vmFD, kvm: kvm, name: name, slot: UInt32(slot), guestAddress: guestAddress,
                                      size: size, backing: backing, readOnly: readOnly, logDirty: logDirty)
            table.append(region)
            table.sort { $0.guestAddress < $1.guestAddress }
            lookup.publish(table)
            return region
        }
    }

    private static func map(
        vmFD: Int32, kvm: KVM?, name: String, slot: UInt32, guestAddress: UInt64, size: UInt64,
        backing: MemoryRegion.Backing, readOnly: Bool, logDirty: Bool
    ) throws(VMMError) -> MemoryRegion {
        var fd: Int32 = -1
        var flags = MAP_SHARED
        switch backing {
        case .anonymous:
            flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE
        case .memfd:
            fd = ckvm_memfd_create("vmm-\(name)", UInt32(MFD_CLOEXEC))
            guard fd >= 0 else { throw .systemCallFailed(name: "memfd_create", errno: .current) }
            guard ftruncate(fd, off_t(size)) == 0 else {
                let err = Errno.current
                Glibc.close(fd)
                throw .systemCallFailed(name: "ftruncate of memfd for region '\(name)'", errno: err)
            }
        case .guestMemfd:
            guard let kvm, kvm.hasExtension(KVM_CAP_GUEST_MEMFD), kvm.hasExtension(KVM_CAP_USER_MEMORY2) else {
                throw .capabilityMissing(name: "KVM_CAP_GUEST_MEMFD", what: "guest_memfd region '\(name)'")
            }
            var create = kvm_create_guest_memfd()
            create.size = size
            create.flags = UInt64(GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED)
            do {
                fd = try ioctl(vmFD, CKVM_CREATE_GUEST_MEMFD, "KVM_CREATE_GUEST_MEMFD", &create)
            } catch {
                throw .ioctlFailed(name: "KVM_CREATE_GUEST_MEMFD (MMAP|INIT_SHARED) for region '\(name)'", errno: error.errno ?? .invalidArgument)
            }
        }
        let host = mmap(nil, Int(size), PROT_READ | PROT_WRITE, flags, fd, 0)
        guard let host, host != MAP_FAILED else {
            let err = Errno.current
            if fd >= 0 { Glibc.close(fd) }
            throw .systemCallFailed(name: "mmap of \(size) bytes for region '\(name)'", errno: err)
        }
        var kvmFlags: UInt32 = 0
        if readOnly { kvmFlags |= UInt32(KVM_MEM_READONLY) }
        if logDirty { kvmFlags |= UInt32(KVM_MEM_LOG_DIRTY_PAGES) }
        do throws(VMMError) {
            if vmFD < 0 {
                // Detached memory (scripted vCPUs): no VM, no memslot.
            } else if backing == .guestMemfd {
                var r = kvm_userspace_memory_region2()
                r.slot = slot
                r.flags = kvmFlags | UInt32(KVM_MEM_GUEST_MEMFD)
                r.guest_phys_addr = guestAddress
                r.memory_size = size
                r.userspace_addr = UInt64(UInt(bitPattern: host))
                r.guest_memfd = UInt32(fd)
                _ = try ioctl(vmFD, CKVM_SET_USER_MEMORY_REGION2, "KVM_SET_USER_MEMORY_REGION2", &r)
            } else {
                var r = kvm_userspace_memory_region(slot: slot, flags: kvmFlags, guest_phys_addr: guestAddress,
                                                    memory_size: size, userspace_addr: UInt64(UInt(bitPattern: host)))
                _ = try ioctl(vmFD, CKVM_SET_USER_MEMORY_REGION, "KVM_SET_USER_MEMORY_REGION", &r)
            }
        } catch {
            munmap(host, Int(size))
            if fd >= 0 { Glibc.close(fd) }
            throw error
        }
        return MemoryRegion(name: name, slot: slot, guestAddress: guestAddress, size: size, backing: backing,
                            readOnly: readOnly, logDirty: logDirty, hostAddress: host, fd: fd)
    }

    /// Removes a region: deletes the memslot, unmaps, closes its fd. Throws
    /// `.closed("virtual machine")` once the VM was closed.
    public func removeRegion(named name: String) throws(VMMError) {
        try regionTable.withLock { tableOrNil throws(VMMError) in
            guard var table = tableOrNil else { throw .closed("virtual machine") }
            defer { tableOrNil = table }
            guard let index = table.firstIndex(where: { $0.name == name }) else {
                throw .invalidArgument("no memory region named '\(name)'")
            }
            let region = table[index]
            var r = kvm_userspace_memory_region(slot: region.slot, flags: 0, guest_phys_addr: region.guestAddress,
                                                memory_size: 0, userspace_addr: 0)
            if vmFD >= 0 { _ = try ioctl(vmFD, CKVM_SET_USER_MEMORY_REGION, "KVM_SET_USER_MEMORY_REGION (delete)", &r) }
            table.remove(at: index)
            lookup.publish(table)
            Self.release(region)
        }
    }

    /// The region containing `gpa`, by binary search.
    public func region(containing gpa: UInt64) -> MemoryRegion? {
        regionTable.withLock { Self.find(gpa, in: $0 ?? []) }
    }

    private static func find(_ gpa: UInt64, in table: [MemoryRegion]) -> MemoryRegion? {
        var lo = 0, hi = table.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if table[mid].endAddress <= gpa { lo = mid + 1 } else { hi = mid }
        }
        return lo < table.count && table[lo].contains(gpa) ? table[lo] : nil
    }

    /// A host pointer for [gpa, gpa+length), which must lie in one region. Takes no lock.
    public func hostPointer(_ gpa: UInt64, length: Int) throws(VMMError) -> UnsafeMutableRawPointer {
        guard let host = lookup.hostAddress(gpa, length: length) else {
            throw .unmappedGuestAddress(gpa: gpa, length: length)
        }
        return host
    }

    public func read(_ gpa: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(VMMError) {
        let src = try hostPointer(gpa, length: buffer.count)
        if let base = buffer.baseAddress { memcpy(base, src, buffer.count) }
    }

    public func write(_ gpa: UInt64, from buffer: UnsafeRawBufferPointer) throws(VMMError) {
        let dst = try hostPointer(gpa, length: buffer.count)
        if let base = buffer.baseAddress { memcpy(dst, base, buffer.count) }
    }

    public func readBytes(_ gpa: UInt64, count: Int) throws(VMMError) -> [UInt8] {
        let src = try hostPointer(gpa, length: count)
        return Array(UnsafeRawBufferPointer(start: src, count: count))
    }

    public func writeBytes(_ gpa: UInt64, _ bytes: [UInt8]) throws(VMMError) {
        let dst = try hostPointer(gpa, length: bytes.count)
        bytes.withUnsafeBytes { if let base = $0.baseAddress { memcpy(dst, base, bytes.count) } }
    }

    /// Reads a little-endian integer (unaligned accesses are fine).
    public func read<T: FixedWidthInteger>(_ gpa: UInt64, as type: T.Type = T.self) throws(VMMError) -> T {
        T(littleEndian: try hostPointer(gpa, length: MemoryLayout<T>.size).loadUnaligned(as: T.self))
    }

    public func write<T: FixedWidthInteger>(_ gpa: UInt64, _ value: T) throws(VMMError) {
        try hostPointer(gpa, length: MemoryLayout<T>.size).storeBytes(of: value.littleEndian, as: T.self)
    }

    /// `KVM_GET_DIRTY_LOG` for a region with `logDirty`: the guest-physical addresses of the
    /// pages written since the last call (the call clears the log).
    public func dirtyPages(in name: String) throws(VMMError) -> [UInt64] {
        // Under the table's lock: `close()` takes it before the VM fd is closed, so the
        // fd used here is still this VM's.
        let (region, bitmap) = try regionTable.withLock { tableOrNil throws(VMMError) -> (MemoryRegion, [UInt64]) in
            guard let table = tableOrNil else { throw .closed("virtual machine") }
            guard let region = table.first(where: { $0.name == name }) else {
                throw .invalidArgument("no memory region named '\(name)'")
            }
            guard region.logDirty else { throw .invalidArgument("memory region \(region) was added without logDirty") }
            let pages = Int(region.size / Self.pageSize)
            var bitmap = [UInt64](repeating: 0, count: (pages + 63) / 64)
            var log = kvm_dirty_log()
            log.slot = region.slot
            try bitmap.withUnsafeMutableBytes { raw in
                log.dirty_bitmap = raw.baseAddress
                // The kernel fills the bitmap during this call only.
                return Result { () throws(VMMError) in _ = try ioctl(vmFD, CKVM_GET_DIRTY_LOG, "KVM_GET_DIRTY_LOG", &log) }
            }.get()
            return (region, bitmap)
        }
        var result: [UInt64] = []
        for (word, bits) in bitmap.enumerated() where bits != 0 {
            for bit in 0..<64 where bits & (1 << UInt64(bit)) != 0 {
                result.append(region.guestAddress + UInt64(word * 64 + bit) * Self.pageSize)
            }
        }
        return result
    }

    private static func release(_ region: MemoryRegion) {
        munmap(region.hostAddress, Int(region.size))
        if region.fd >= 0 { Glibc.close(region.fd) }
    }

    /// Unmaps everything (the VM fd is closed right after, which drops the memslots).
    /// Afterwards `addRegion`, `removeRegion` and `dirtyPages` throw `.closed`, and every
    /// access finds no region. Idempotent.
    func close() {
        let all = regionTable.withLock { t -> [MemoryRegion] in
            defer { t = nil; lookup.publish([]) }
            return t ?? []
        }
        all.forEach(Self.release)
    }
}

extension VMMError {
    var errno: Errno? {
        switch self {
        case let .ioctlFailed(_, e), let .systemCallFailed(_, e), let .kvmUnavailable(_, e): return e
        default: return nil
        }
    }
}
