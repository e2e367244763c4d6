import CVMMPlugin
import Glibc

/// The host's extension tables, answered by `vmm_host_t.get_extension`. They hold only
/// sizes and function pointers taking `host_data`, so one copy serves every instance
/// and lives as long as the process (the header promises "until destroy()").
enum HostExtensions {
    private static func classInfo(_ cls: vmm_exit_class) -> UnsafeRawPointer {
        let info = UnsafeMutablePointer<vmm_exit_class_info_t>.allocate(capacity: 1)
        info.initialize(to: vmm_exit_class_info_t(struct_size: UInt32(MemoryLayout<vmm_exit_class_info_t>.size),
                                                  exit_class: cls.rawValue))
        return UnsafeRawPointer(info)
    }

    nonisolated(unsafe) private static let tables: [(String, UnsafeRawPointer)] = {
        let hypercall = UnsafeMutablePointer<vmm_host_hypercall_t>.allocate(capacity: 1)
        hypercall.initialize(to: vmm_host_hypercall_t())
        hypercall.pointee.struct_size = UInt32(MemoryLayout<vmm_host_hypercall_t>.size)
        hypercall.pointee.register_hypercall = { data, number, signature, fn, user, errorOut in
            guard let plugin = PluginHandle.instance(data) else { return -ESHUTDOWN }
            return TypedHypercall.register(plugin, number: number, signature: signature,
                                    fn: fn, user: user, errorOut: errorOut)
        }
        let asyncPF = UnsafeMutablePointer<vmm_host_async_pf_t>.allocate(capacity: 1)
        asyncPF.initialize(to: vmm_host_async_pf_t())
        asyncPF.pointee.struct_size = UInt32(MemoryLayout<vmm_host_async_pf_t>.size)
        asyncPF.pointee.raise = { data, vcpuID, event, messageOut in
            guard let plugin = PluginHandle.instance(data) else { return VMM_FAIL.rawValue }
            return AsyncPFEvents.raise(plugin.host, vcpuID: vcpuID, event: event, messageOut: messageOut)
        }
        return [
            (VMM_EXT_EXIT_PIO, classInfo(VMM_EXIT_PIO)),
            (VMM_EXT_EXIT_MMIO, classInfo(VMM_EXIT_MMIO)),
            (VMM_EXT_EXIT_MSR, classInfo(VMM_EXIT_MSR)),
            (VMM_EXT_EXIT_MEMORY_FAULT, classInfo(VMM_EXIT_MEMORY_FAULT)),
            (VMM_EXT_EXIT_ASYNC_PF, classInfo(VMM_EXIT_ASYNC_PF)),
            (VMM_EXT_EXIT_HLT, classInfo(VMM_EXIT_HLT)),
            (VMM_EXT_EXIT_OTHER, classInfo(VMM_EXIT_OTHER)),
            (VMM_EXT_HOST_HYPERCALL, UnsafeRawPointer(hypercall)),
            (VMM_EXT_HOST_ASYNC_PF, UnsafeRawPointer(asyncPF)),
            (VMM_EXT_HOST_VCPU, PluginVCPUExtension.table),
            (VMM_EXT_HOST_PAGER, PluginPagerExtension.table),
            (VMM_EXT_HOST_SECCOMP, PluginSeccompExtension.table),
        ]
    }()

    /// The table for `id`, or nil (coalesced_mmio/1 and ioeventfd/1: HostFastPaths.swift).
    static func lookup(_ id: UnsafePointer<CChar>) -> UnsafeRawPointer? {
        for (name, table) in tables where strcmp(name, id) == 0 { return table }
        return nil
    }
}

/// The async_pf/1 extension: events raised by one plugin, handled by the handlers of
/// class VMM_EXIT_ASYNC_PF (another plugin), like an exit.
enum AsyncPFEvents {
    /// How deep raises may nest on one thread.
    static let maxDepth = 8

    static func raise(_ host: PluginHost, vcpuID: UInt32, event: UnsafePointer<vmm_exit_async_pf_t>?,
                      messageOut: UnsafeMutablePointer<UnsafePointer<CChar>?>?) -> vmm_verdict_t {
        guard let event else { return VMM_NOT_MINE.rawValue }
        let state = PluginThreadState.current
        // VMM_FAIL with `text` as the message, kept alive on this thread for the raiser.
        func fail(_ text: String) -> vmm_verdict_t {
            free(state.lastMessage)
            state.lastMessage = strdup(text)
            if let messageOut { PluginPointer.store(UnsafePointer(state.lastMessage), at: messageOut) }
            return VMM_FAIL.rawValue
        }
        // Handlers keep state per vCPU and per kind: an id or kind that does not exist is
        // a raiser's bug, refused here (a plugin raising for ids 1000 to 21000 grew the
        // async-PF plugin's table by 20,000 slots, at a quadratic cost).
        guard PluginPointer.isAligned(event, as: vmm_exit_async_pf_t.self) else {
            return fail("async_pf raise: the event at \(hex(UInt64(UInt(bitPattern: event)))) is not aligned as a "
                + "vmm_exit_async_pf_t must be (a multiple of \(MemoryLayout<vmm_exit_async_pf_t>.alignment))")
        }
        let kind = event.pointee.kind
        let knownVCPU = vcpuID == VMM_VCPU_NONE || host.vm.vcpus.contains { $0.id == vcpuID }
        guard knownVCPU, (VMM_ASYNC_PF_PAGE_MISSING...VMM_ASYNC_PF_KICK).contains(kind) else {
            return fail("async_pf raise: " + (knownVCPU ? "event kind \(kind) is not PAGE_MISSING, PAGE_READY or KICK" : "vCPU \(vcpuID) does not exist"))
        }
        // A handler may raise from inside one, but not without end: each level is a
        // stack frame of the raiser's thread, and a plugin raising from every handler
        // call overflowed it (a crash).
        // PAGE_MISSING says the vCPU stopped on a missing page: its handlers (the AsyncPF
        // plugin) change that vCPU's state and inject into it, which only its own thread,
        // in an exit, may do. From another thread they ran beside it: an NMI it had been
        // asked for was lost, its counters and halt state went wrong, all unlocked.
        guard kind != VMM_ASYNC_PF_PAGE_MISSING || PluginThreadState.active(vcpuID: vcpuID) != nil else {
            return fail("async_pf raise: PAGE_MISSING for vCPU \(vcpuID) comes from that vCPU's thread, during one of its exits")
        }
        guard state.raiseDepth < Self.maxDepth else {
            return fail("async_pf raise: nested more than \(Self.maxDepth) deep (a handler raising events from inside one)")
        }
        state.raiseDepth += 1
        defer { state.raiseDepth -= 1 }
        // Events nest inside an exit (PAGE_MISSING) or come from any thread (PAGE_READY):
        // use a private record, never the thread's exit record, which may be in use.
        var record = vmm_exit_t()
        record.struct_size = UInt32(MemoryLayout<vmm_exit_t>.size)
        record.vcpu_id = vcpuID
        record.exit_class = VMM_EXIT_ASYNC_PF.rawValue
        record.async_pf = event.pointee
        for h in host.asyncPFHandlers where h.covers(event.pointee.gpa) {
            record.message = nil
            let v = state.call(h.handle, h.user, &record, h.tag)
            if v == VMM_NOT_MINE.rawValue { continue }
            // The text is made before `fail` frees the last message: a handler may hand
            // on the message of a raise it made itself, which is that very message.
            return v == VMM_HANDLED.rawValue ? v : fail("\(h.owner): " + PluginText.message(record.message))
        }
        return VMM_NOT_MINE.rawValue
    }
}
