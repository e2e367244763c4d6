import CKVM
import CVMMPlugin
import Glibc

/// The host extensions "org.vmmkit.host.coalesced_mmio/1" and "org.vmmkit.host.ioeventfd/1":
/// the VMMKit fast paths (CoalescedMMIO.swift, IOEventFD.swift, IRQFD.swift) offered to
/// plugins through the C ABI. `get_extension` answers NULL for one the kernel lacks.
enum HostFastPaths {
    nonisolated(unsafe) private static let coalesced: UnsafeMutablePointer<vmm_host_coalesced_mmio_t> = {
        let t = UnsafeMutablePointer<vmm_host_coalesced_mmio_t>.allocate(capacity: 1)
        t.initialize(to: vmm_host_coalesced_mmio_t())
        t.pointee.struct_size = UInt32(MemoryLayout<vmm_host_coalesced_mmio_t>.size)
        t.pointee.add = { data, space, addr, len, errorOut in
            guard let plugin = PluginHandle.instance(data) else { return -ESHUTDOWN }
            return plugin.fastPaths.addCoalesced(plugin, space: space, address: addr, length: len, errorOut)
        }
        return t
    }()

    nonisolated(unsafe) private static let ioeventfd: UnsafeMutablePointer<vmm_host_ioeventfd_t> = {
        let t = UnsafeMutablePointer<vmm_host_ioeventfd_t>.allocate(capacity: 1)
        t.initialize(to: vmm_host_ioeventfd_t())
        t.pointee.struct_size = UInt32(MemoryLayout<vmm_host_ioeventfd_t>.size)
        t.pointee.add = { data, space, addr, len, flags, datamatch, notify, user, errorOut in
            guard let plugin = PluginHandle.instance(data) else { return -ESHUTDOWN }
            return plugin.fastPaths.addDoorbell(plugin, space: space, address: addr, length: len, flags: flags,
                                                datamatch: datamatch, notify: notify, user: user, errorOut)
        }
        t.pointee.add_irqfd = { data, gsi, fdOut, errorOut in
            guard let plugin = PluginHandle.instance(data) else { return -ESHUTDOWN }
            return plugin.fastPaths.addIRQFD(plugin, gsi: gsi, fdOut: fdOut, errorOut)
        }
        return t
    }()

    /// The table for `id` if it names one of these extensions and the kernel has it.
    static func lookup(_ id: UnsafePointer<CChar>, _ plugin: PluginInstance) -> UnsafeRawPointer? {
        let kvm = plugin.host.vm.kvm
        if strcmp(id, VMM_EXT_HOST_COALESCED_MMIO) == 0 {
            return kvm.hasExtension(KVM_CAP_COALESCED_MMIO) ? UnsafeRawPointer(coalesced) : nil
        }
        if strcmp(id, VMM_EXT_HOST_IOEVENTFD) == 0 {
            return kvm.hasExtension(KVM_CAP_IOEVENTFD) ? UnsafeRawPointer(ioeventfd) : nil
        }
        return nil
    }
}

/// One plugin instance's coalesced zones, doorbells and irqfds. Set up during init;
/// undone if init (or wiring its handlers) fails; the notifier stops before the
/// plugin's destroy() (no callback runs during or after it) and the fds close after.
final class PluginFastPaths {
    private var zones: [CoalescedRing.Zone] = []
    private var doorbells: [IOEventFD] = []
    private var irqfds: [IRQFD] = []
    private var notifier: EventNotifier?

    /// This plugin's first doorbell in `space` within [start, end), if any.
    func doorbell(in space: IOSpace, start: UInt64, end: UInt64) -> IOEventFD? {
        doorbells.first { bell in
            let (sum, wraps) = bell.address.addingReportingOverflow(UInt64(max(bell.length, 1)))
            return bell.space == space && bell.address < end && start < (wraps ? UInt64.max : sum)
        }
    }

    func addCoalesced(_ plugin: PluginInstance, space: UInt32, address: UInt64, length: UInt64,
                      _ errorOut: UnsafeMutablePointer<UnsafePointer<CChar>?>?) -> Int32 {
        func refuse(_ code: Int32, _ text: String) -> Int32 { plugin.setError("\(plugin.name): \(text)", errorOut); return -code }
        guard plugin.onLoadThread else { return refuse(EPERM, "coalesced_mmio add is only allowed during init") }
        guard let kind = Self.space(space) else { return refuse(EINVAL, "coalesced_mmio add: unknown space \(space)") }
        let cls = kind == .pio ? VMM_EXIT_PIO.rawValue : VMM_EXIT_MMIO.rawValue
        let end = address.addingReportingOverflow(length)
        guard length > 0, length <= UInt64(UInt32.max), !end.overflow,
              plugin.staged.contains(where: { $0.exitClass == cls && $0.start <= address && end.partialValue <= $0.end }) else {
            return refuse(EINVAL, "coalesced_mmio add: \(kind.rawValue) range \(hex(address))+\(length) is not covered by one of this plugin's handlers")
        }
        do {
            if kind == .pio {
                // A handler may cover all 0x10000 ports; a coalesced zone's count is 16 bits.
                guard length <= 0xffff else {
                    return refuse(EINVAL, "coalesced_mmio add: pio range \(hex(address))+\(length) is more than 0xffff ports")
                }
                try plugin.host.vm.registerCoalescedPIO(port: UInt16(address), count: UInt16(length))
            } else {
                try plugin.host.vm.registerCoalescedMMIO(address: address, length: UInt32(length))
            }
        } catch {
            return refuse(Self.errno(error), "coalesced_mmio add: \(error)")
        }
        zones.append(CoalescedRing.Zone(space: kind, address: address, length: UInt32(length)))
        return 0
    }

    func addDoorbell(_ plugin: PluginInstance, space: UInt32, address: UInt64, length: UInt32, flags: UInt32,
                     datamatch: UInt64, notify: (@convention(c) (UnsafeMutableRawPointer?, UInt64) -> Void)?,
                     user: UnsafeMutableRawPointer?, _ errorOut: UnsafeMutablePointer<UnsafePointer<CChar>?>?) -> Int32 {
        func refuse(_ code: Int32, _ text: String) -> Int32 { plugin.setError("\(plugin.name): \(text)", errorOut); return -code }
        guard plugin.onLoadThread else { return refuse(EPERM, "ioeventfd add is only allowed during init") }
        guard let kind = Self.space(space) else { return refuse(EINVAL, "ioeventfd add: unknown space \(space)") }
        guard flags & ~UInt32(VMM_IOEVENTFD_DATAMATCH) == 0 else { return refuse(EINVAL, "ioeventfd add: unknown flags \(hex(flags))") }
        guard let notify else { return refuse(EINVAL, "ioeventfd add: no notify function") }
        // A doorbell takes the guest's writes before any handler sees them: over another
        // owner's exclusive range it would steal them. The dispatcher holds only other
        // owners' ranges while this plugin's init runs (its own are staged).
        let span = UInt64(max(length, 1))
        let (sum, wraps) = address.addingReportingOverflow(span)
        let end = wraps ? UInt64.max : sum // no range reaches past 2^64 - 1
        let dispatcher = plugin.host.dispatcher
        let taken = kind == .pio
            ? dispatcher.pio.clash(start: address, end: end, exclusive: false).map { ($0.start, $0.end, $0.owner) }
            : dispatcher.mmio.clash(start: address, end: end, exclusive: false).map { ($0.start, $0.end, $0.owner) }
        if let (start, stop, owner) = taken {
            return refuse(EEXIST, "ioeventfd add: \(kind.rawValue) \(hex(address))+\(span) overlaps [\(hex(start))..<\(hex(stop))], "
                + "owned exclusively by \(owner)")
        }
        do {
            let match: UInt64? = flags & UInt32(VMM_IOEVENTFD_DATAMATCH) != 0 ? datamatch : nil
            let bell = try plugin.host.vm.addIOEventFD(space: kind, address: address, length: length, datamatch: match)
            doorbells.append(bell)
            let watcher = try notifier ?? EventNotifier()
            notifier = watcher
            nonisolated(unsafe) let context = user
            watcher.watch(bell) { n in notify(context, n) }
            try watcher.start()
        } catch let error as VMMError {
            if case .ioctlFailed(_, .fileExists) = error {
                return refuse(EEXIST, "ioeventfd add: \(kind.rawValue) \(hex(address)) overlaps another doorbell")
            }
            return refuse(Self.errno(error), "ioeventfd add: \(error)")
        } catch {
            return refuse(EIO, "ioeventfd add: \(error)")
        }
        return 0
    }

    func addIRQFD(_ plugin: PluginInstance, gsi: UInt32, fdOut: UnsafeMutablePointer<Int32>?,
                  _ errorOut: UnsafeMutablePointer<UnsafePointer<CChar>?>?) -> Int32 {
        guard plugin.onLoadThread else { plugin.setError("\(plugin.name): add_irqfd is only allowed during init", errorOut); return -EPERM }
        guard let fdOut else { plugin.setError("\(plugin.name): add_irqfd: fd_out is NULL", errorOut); return -EINVAL }
        do {
            let irq = try plugin.host.vm.addIRQFD(gsi: gsi)
            irqfds.append(irq)
            PluginPointer.store(irq.fd, at: fdOut)
            return 0
        } catch {
            plugin.setError("\(plugin.name): add_irqfd: \(error)", errorOut)
            return -Self.errno(error)
        }
    }

    /// Before the plugin's destroy(): no notify callback runs after this returns.
    func quiesce() {
        notifier?.stop()
        notifier = nil
    }

    /// Undoes everything (a failed init) or releases it (after destroy()).
    func close(vm: VirtualMachine) {
        quiesce()
        for zone in zones { try? vm.unregisterCoalesced(space: zone.space, address: zone.address, length: zone.length) }
        for bell in doorbells { bell.close() }
        for irq in irqfds { irq.close() }
        zones = []; doorbells = []; irqfds = []
    }

    private static func space(_ raw: UInt32) -> IOSpace? {
        switch raw {
        case VMM_SPACE_MMIO: .mmio
        case VMM_SPACE_PIO: .pio
        default: nil
        }
    }

    /// The ABI's errno for a VMMKit error: a missing capability is ENOTSUP.
    private static func errno(_ error: VMMError) -> Int32 {
        switch error {
        case .capabilityMissing: ENOTSUP
        case let .ioctlFailed(_, e), let .systemCallFailed(_, e): e.rawValue
        default: EINVAL
        }
    }
}
