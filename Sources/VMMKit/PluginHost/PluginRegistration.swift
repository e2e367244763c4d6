import CVMMPlugin
import Glibc

/// register_handler: validates one `vmm_handler_desc_t` and stages it, refusing an
/// exclusive overlap right away with both owners named.
enum PluginRegistration {
    static func register(_ plugin: PluginInstance, _ descPointer: UnsafePointer<vmm_handler_desc_t>?,
                         _ errorOut: UnsafeMutablePointer<UnsafePointer<CChar>?>?) -> Int32 {
        func refuse(_ code: Int32, _ text: String) -> Int32 {
            plugin.setError(text, errorOut)
            return -code
        }
        guard plugin.onLoadThread else {
            return refuse(EPERM, "\(plugin.name): register_handler is only allowed during init, on the thread running init")
        }
        guard let descPointer else { return refuse(EINVAL, "\(plugin.name): register_handler got NULL") }
        guard PluginPointer.isAligned(descPointer, as: vmm_handler_desc_t.self) else {
            return refuse(EINVAL, "\(plugin.name): handler descriptor at \(hex(UInt64(UInt(bitPattern: descPointer)))) is not aligned "
                + "as a vmm_handler_desc_t must be (a multiple of \(MemoryLayout<vmm_handler_desc_t>.alignment))")
        }
        // Honour the plugin's struct_size (ABI rule 3): copy what it has, zero the rest.
        var desc = vmm_handler_desc_t()
        // Whole fields only: the ones past `required` are 8-byte pointers, so a size that
        // ends inside one (a malformed struct_size) must not build half a pointer.
        let claimed = Int(UnsafeRawPointer(descPointer).load(as: UInt32.self))
        let have = min(claimed, MemoryLayout<vmm_handler_desc_t>.size) & ~7
        let required = MemoryLayout<vmm_handler_desc_t>.offset(of: \.user)!
        guard have >= required else {
            return refuse(EINVAL, "\(plugin.name): handler descriptor is \(claimed) bytes, smaller than ABI 1.0's")
        }
        withUnsafeMutableBytes(of: &desc) { $0.copyMemory(from: UnsafeRawBufferPointer(start: descPointer, count: have)) }
        let label = desc.name.map(PluginText.read)
        let owner = "\(plugin.library.id)" + (label.map { " '\($0)'" } ?? "") + " (\(plugin.library.path))"
        guard let handle = desc.handle else { return refuse(EINVAL, "\(owner): handler descriptor has no handle function") }
        guard desc.flags & ~(UInt32(VMM_HANDLER_EXCLUSIVE) | VMM_HANDLER_ZERO_FILL | VMM_HANDLER_ANY_THREAD) == 0 else {
            return refuse(EINVAL, "\(owner): unknown handler flags \(hex(desc.flags))")
        }
        let zeroFill = desc.flags & VMM_HANDLER_ZERO_FILL != 0, anyThread = desc.flags & VMM_HANDLER_ANY_THREAD != 0
        guard !(zeroFill || anyThread) || desc.exit_class == VMM_EXIT_MEMORY_FAULT.rawValue else {
            return refuse(EINVAL, "\(owner): VMM_HANDLER_ZERO_FILL and VMM_HANDLER_ANY_THREAD are only for memory-fault handlers")
        }
        let exclusive = desc.flags & UInt32(VMM_HANDLER_EXCLUSIVE) != 0
        let cls = desc.exit_class
        let start = desc.base, length = desc.length
        switch cls {
        case VMM_EXIT_PIO.rawValue, VMM_EXIT_MMIO.rawValue, VMM_EXIT_MSR.rawValue:
            guard length > 0 else {
                return refuse(EINVAL, "\(owner): range at \(hex(start)) has length 0 (must be at least 1)")
            }
            // Ranges are kept as [start, end) with end in UInt64: one ending exactly at
            // 2^64 has no end to keep, and no guest address is that high anyway.
            guard start <= UInt64.max - length else {
                return refuse(EINVAL, "\(owner): \(className(cls)) range at \(hex(start)) with length \(hex(length)) runs past 0xffffffffffffffff")
            }
            // An MSR index is 32 bits: a range beyond them could never match.
            guard cls != VMM_EXIT_MSR.rawValue || start &+ length <= 1 << 32 else {
                return refuse(EINVAL, "\(owner): MSR range at \(hex(start)) with length \(hex(length)) runs past MSR 0xffffffff")
            }
        case VMM_EXIT_HLT.rawValue:
            // A HLT has no address: a range would read as a claim the host cannot honour.
            guard start == 0, length == 0 else {
                return refuse(EINVAL, "\(owner): HLT handler has base \(hex(start)) and length \(hex(length)); "
                    + "a HLT has no address, so both must be 0")
            }
        case VMM_EXIT_MEMORY_FAULT.rawValue, VMM_EXIT_ASYNC_PF.rawValue, VMM_EXIT_OTHER.rawValue:
            // Length 0 is the whole space; any other range must end where it can be kept.
            // One that wrapped matched nothing, yet a memory-fault range was still
            // demand-paged on its behalf: the guest's first fault there was stuck.
            guard length == 0 || start <= UInt64.max - length else {
                return refuse(EINVAL, "\(owner): \(className(cls)) range at \(hex(start)) with length \(hex(length)) runs past 0xffffffffffffffff (length 0 is the whole space)")
            }
        default:
            return refuse(EINVAL, "\(owner): unknown exit class \(cls)")
        }
        let handler = PluginHandler(exitClass: cls, start: start, end: length == 0 ? start : start &+ length,
                                    priority: desc.priority, exclusive: exclusive, handle: handle, user: desc.user,
                                    owner: owner, zeroFill: zeroFill, anyThread: anyThread)
        do {
            switch cls {
            case VMM_EXIT_PIO.rawValue:
                guard length <= 0x10000, start <= 0x10000 - length else {
                    return refuse(EINVAL, "\(owner): port range \(hex(start))+\(length) runs past port 0xffff")
                }
                // The dispatcher counts ports in 16 bits (found by Fuzz/fuzz-plugin-entry).
                guard length <= 0xffff else {
                    return refuse(EINVAL, "\(owner): port range \(hex(start))+\(hex(length)) covers more than 0xffff ports")
                }
                if let refusal = inKernelPortClash(plugin, start, start + length, owner) { return refuse(EINVAL, refusal) }
                if exclusive, let refusal = doorbellClash(plugin, .pio, start, start + length, owner) { return refuse(EEXIST, refusal) }
                try plugin.dryPIO.insert(start: start, length: length, priority: desc.priority, exclusive: exclusive,
                                         owner: owner, unit: "port", handler: { _, _ in .notMine })
            case VMM_EXIT_MMIO.rawValue:
                // KVM never exits for an access to writable RAM: such a claim is a plugin
                // bug (and would collide with the demand pager's claim over RAM).
                if let ram = plugin.host.vm.memory.regions.first(where: { !$0.readOnly && $0.overlaps(start, length) }) {
                    return refuse(EINVAL, "\(owner): MMIO range [\(hex(start))..<\(hex(handler.end))] overlaps guest RAM "
                        + "'\(ram.name)' [\(hex(ram.guestAddress))..<\(hex(ram.endAddress))]")
                }
                if let refusal = inKernelClash(plugin, start, start + length, owner) { return refuse(EINVAL, refusal) }
                if exclusive, let refusal = doorbellClash(plugin, .mmio, start, start + length, owner) { return refuse(EEXIST, refusal) }
                try plugin.dryMMIO.insert(start: start, length: length, priority: desc.priority, exclusive: exclusive,
                                          owner: owner, unit: "MMIO", handler: { _, _ in .notMine })
            default:
                if let clash = classClash(plugin, handler) {
                    return refuse(EEXIST, "\(owner): \(className(cls)) range [\(hex(start))..<\(hex(handler.end))] overlaps "
                        + "[\(hex(clash.start))..<\(hex(clash.end))] owned by \(clash.owner) (an exclusive range cannot be shared)")
                }
            }
        } catch {
            return refuse(EEXIST, error.description)
        }
        plugin.staged.append(handler)
        return 0
    }

    /// The MMIO the in-kernel irqchip serves itself, as KVM's ioapic.h and lapic.c bound
    /// it: the I/O APIC's 0x100 bytes at its fixed base and the local APIC's page at its
    /// reset base (a guest may move it, rarely does; no other address is known here).
    static let inKernelMMIO: [(name: String, start: UInt64, end: UInt64)] = [
        ("I/O APIC", 0xfec0_0000, 0xfec0_0100), ("local APIC", 0xfee0_0000, 0xfee0_1000),
    ]

    /// With the in-kernel irqchip, accesses there never leave the kernel: a handler over
    /// any of it would never run there, a claim accepted in silence.
    static func inKernelClash(_ plugin: PluginInstance, _ start: UInt64, _ end: UInt64, _ owner: String) -> String? {
        guard plugin.host.vm.hasIRQChip else { return nil }
        guard let r = inKernelMMIO.first(where: { start < $0.end && $0.start < end }) else { return nil }
        return "\(owner): MMIO range [\(hex(start))..<\(hex(end))] overlaps the in-kernel \(r.name) [\(hex(r.start))..<\(hex(r.end))]: "
            + "with the in-kernel irqchip KVM serves those accesses itself, so the handler would never run there"
    }

    /// The ports the in-kernel devices serve, as KVM's i8259.c and i8254.c register them:
    /// each PIC's two, the ELCR's two (with the irqchip), the PIT's four and its speaker
    /// port 0x61 (with the PIT, which `createPIT` makes with KVM_PIT_SPEAKER_DUMMY; KVM
    /// registers four ports there but answers 0x61 alone, so 0x62-0x64 still exit).
    static let inKernelPorts: [(name: String, start: UInt64, end: UInt64, pit: Bool)] = [
        ("master PIC", 0x20, 0x22, false), ("PIT", 0x40, 0x44, true), ("PIT's speaker port", 0x61, 0x62, true),
        ("slave PIC", 0xa0, 0xa2, false), ("ELCR", 0x4d0, 0x4d2, false),
    ]

    /// As `inKernelClash`, for ports; a range only partly over a device is refused too.
    /// KVM keeps every access lying within a device's ports; only one running past the
    /// last (a word at 0x21) exits, and that is no access these byte-wide registers take.
    static func inKernelPortClash(_ plugin: PluginInstance, _ start: UInt64, _ end: UInt64, _ owner: String) -> String? {
        let vm = plugin.host.vm
        guard let d = inKernelPorts.first(where: { ($0.pit ? vm.hasPIT : vm.hasIRQChip) && start < $0.end && $0.start < end }) else {
            return nil
        }
        return "\(owner): port range [\(hex(start))..<\(hex(end))] overlaps the in-kernel \(d.name) [\(hex(d.start))..<\(hex(d.end))] "
            + "at port \(hex(max(start, d.start))): with the in-kernel \(d.pit ? "PIT" : "irqchip") KVM serves those ports itself, "
            + "so the handler would never run there"
    }

    /// Another plugin's ioeventfd doorbell within [start, end): the kernel takes the
    /// guest's writes there before any handler, so an exclusive range would not get them
    /// (the other order, a doorbell over an exclusive range, is refused at `ioeventfd add`).
    static func doorbellClash(_ plugin: PluginInstance, _ space: IOSpace, _ start: UInt64, _ end: UInt64,
                                      _ owner: String) -> String? {
        for other in plugin.host.instances where other !== plugin {
            guard let bell = other.fastPaths.doorbell(in: space, start: start, end: end) else { continue }
            return "\(owner): \(space.rawValue) range [\(hex(start))..<\(hex(end))] overlaps the ioeventfd doorbell at "
                + "\(space.rawValue) \(hex(bell.address))+\(max(bell.length, 1)) of \(other.name) (an exclusive range cannot be shared)"
        }
        return nil
    }

    /// The first registered or staged range of the same class that may not share with `h`.
    private static func classClash(_ plugin: PluginInstance, _ h: PluginHandler) -> ClassRange? {
        let mine = plugin.staged.map {
            ClassRange(exitClass: $0.exitClass, start: $0.start, end: $0.end, exclusive: $0.exclusive, owner: $0.owner)
        }
        return (plugin.host.classRanges + mine).first { r in
            guard r.exitClass == h.exitClass, r.exclusive || h.exclusive else { return false }
            let whole = r.start == r.end || h.start == h.end // length 0: the whole space
            return whole || (r.start < h.end && h.start < r.end)
        }
    }

    static func className(_ cls: UInt32) -> String {
        switch cls {
        case VMM_EXIT_PIO.rawValue: "port"
        case VMM_EXIT_MMIO.rawValue: "MMIO"
        case VMM_EXIT_MSR.rawValue: "MSR"
        case VMM_EXIT_MEMORY_FAULT.rawValue: "memory-fault"
        case VMM_EXIT_ASYNC_PF.rawValue: "async-PF"
        case VMM_EXIT_HLT.rawValue: "HLT"
        case VMM_EXIT_OTHER.rawValue: "exit-reason"
        default: "class \(cls)"
        }
    }
}
