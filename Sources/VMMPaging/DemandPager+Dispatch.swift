import Glibc
import VMMKit

extension DemandPager {
    public static let handlerPriority: Int32 = 1 << 30

    /// Registers the pager's handlers on `dispatcher` (before the vCPUs start) and, in
    /// blocking mode, starts the fault router for `vcpus`.
    /// Its handlers run before any plugin's (priority `handlerPriority`): faults in the
    /// region are the pager's, and it asks its page source — possibly the plugins.
    public func attach(to dispatcher: ExitDispatcher, vcpus: [VCPU]) throws(VMMError) {
        let priority = Self.handlerPriority
        // Weak: the dispatcher outlives a run and cannot drop handlers, and a page source
        // may hold what holds the dispatcher (PluginPageSource -> PluginHost): a strong
        // capture made a cycle that kept the VM's fds and the userfaultfd open forever.
        // These paths are faults (a page fetch each), not the exit fast path.
        try dispatcher.registerMMIO(address: region.guestAddress, length: region.size, priority: priority,
                                    owner: "memory-fault") { [weak self] access, vcpu in
            self?.completeRAMAccess(&access, vcpu) ?? .notMine
        }
        try dispatcher.register(.memoryFault, priority: priority, owner: "memory-fault") { [weak self] exit, vcpu in
            guard case let .memoryFault(fault) = exit, let self else { return .notMine }
            return resolve(fault, vcpu)
        }
        try dispatcher.register(.internalError, priority: priority, owner: "memory-fault") { [weak self] _, vcpu in
            // Ring-0 instruction fetch from a missing page (SIGBUS mode on this host).
            self?.resolveInstructionFetch(vcpu) ?? .notMine
        }
        guard mode == .blocking else { return }
        for vcpu in vcpus {
            // Behind a hook already there (a plugin host delivering kicks), which sees
            // every kick first. Weak: the router holds the vCPUs, the vCPUs must not
            // keep the pager alive.
            let earlier = vcpu.hooks.onInterrupt
            vcpu.hooks.onInterrupt = { [weak self] vcpu in earlier?(vcpu) ?? self?.takePosted(for: vcpu) }
        }
        // The router serving the host's faults since init gives way to one for the vCPUs.
        self.router?.stop()
        let router = try FaultRouter(pager: self, vcpus: vcpus)
        self.router = router
        try router.start()
    }

    /// A ring-0 access that KVM turned into an MMIO exit because its RAM page is
    /// missing: install the page, then do the access on it as the guest would have.
    func completeRAMAccess(_ access: inout MMIOAccess, _ vcpu: VCPU) -> ExitVerdict {
        do {
            try ensureRange(access.address, length: UInt64(access.length), by: .vcpu,
                            for: PageRequest(vcpu: vcpu.id, access: access.isWrite ? .write : .read))
        } catch {
            return .stop(stuck(vcpu, gpa: access.address, error))
        }
        let host = region.hostAddress + Int(access.address - region.guestAddress)
        let length = min(access.length, 8)
        if access.isWrite {
            withUnsafeBytes(of: access.data.littleEndian) { host.copyMemory(from: $0.baseAddress!, byteCount: length) }
        } else {
            var value: UInt64 = 0
            withUnsafeMutableBytes(of: &value) { $0.baseAddress!.copyMemory(from: host, byteCount: length) }
            access.data = UInt64(littleEndian: value)
        }
        return .handled
    }

    func resolve(_ fault: MemoryFault, _ vcpu: VCPU) -> ExitVerdict {
        // Poison is not a missing page: installing one cannot help, and the core's
        // default stops the vCPU as .hardwarePoison.
        if fault.isHardwarePoison { return .notMine }
        guard let at = fault.location else {
            if let verdict = resolveInstructionFetch(vcpu) { return verdict }
            let rip = (try? vcpu.registers().rip).map { "0x" + String($0, radix: 16) } ?? "unknown"
            return .stop(.memoryFault("vCPU \(vcpu.id) at RIP \(rip): un-annotated EFAULT with no guest-physical address and no missing page at RIP: a ring-3 data access to a page that is not present yet carries no address in SIGBUS mode, so the pager cannot resolve it; use DemandPager.Mode.blocking (the default) for guests that run ring-3 code"))
        }
        guard pageIndex(at.gpa) != nil else { return .notMine }
        do {
            try ensureRange(at.gpa, length: at.size, by: .vcpu, for: PageRequest(vcpu: vcpu.id, access: []))
        } catch {
            return .stop(stuck(vcpu, gpa: at.gpa, error))
        }
        return .handled
    }

    /// An instruction fetch from a missing page carries no address: the GPA comes from
    /// translating RIP (and the end of a 15-byte instruction that may straddle pages).
    /// nil when no page of the instruction is missing.
    func resolveInstructionFetch(_ vcpu: VCPU) -> ExitVerdict? {
        guard let rip = try? vcpu.registers().rip else { return nil }
        var missing: [UInt64] = []
        // The guest's RIP: its last byte wraps at 2^64 as the CPU's fetch would.
        for va in [rip, rip &+ 14] {
            guard let gpa = try? vcpu.translate(va), let page = pageIndex(gpa), !tracker.isPresent(page) else { continue }
            if !missing.contains(gpa & ~0xfff) { missing.append(gpa & ~0xfff) }
        }
        guard !missing.isEmpty else { return nil }
        for gpa in missing {
            do {
                try ensureRange(gpa, length: 1, by: .vcpu, for: PageRequest(vcpu: vcpu.id, access: .execute))
            } catch {
                return .stop(stuck(vcpu, gpa: gpa, error))
            }
        }
        return .handled
    }

    /// Leaves a fault for `vcpu` to resolve on its own thread (router side).
    func post(_ gpa: UInt64, to vcpu: VCPU) {
        mailbox.withLock { $0[vcpu.id] = gpa }
    }

    /// Whether `vcpu` has no fault posted to it (router side).
    func hasNoPost(for vcpu: UInt32) -> Bool { mailbox.withLock { $0[vcpu] == nil } }

    /// Whether `vcpu` has taken the fault at `gpa` posted to it: its mailbox no longer
    /// holds that page (router side). Per page, not per vCPU: while it handles one
    /// posted fault, a vCPU thread can fault on a second page in user space (a plugin
    /// reading guest memory), and that post must not pass for taken, nor the first's.
    func wasTaken(_ gpa: UInt64, by vcpu: UInt32) -> Bool { mailbox.withLock { $0[vcpu] != gpa } }

    /// Takes the fault at `gpa` back if it is still posted to `vcpu`: the router
    /// resolves it instead. A later post to the same vCPU stays.
    func withdraw(_ gpa: UInt64, from vcpu: UInt32) {
        mailbox.withLock { if $0[vcpu] == gpa { $0[vcpu] = nil } }
    }

    /// The vCPU side of a kick: the fault the router left for it, as a memory-fault event
    /// (nil if none, or if it was resolved meanwhile).
    func takePosted(for vcpu: VCPU) -> VMExit? {
        guard let gpa = mailbox.withLock({ $0.removeValue(forKey: vcpu.id) }),
              let page = pageIndex(gpa), !tracker.isPresent(page) else { return nil }
        return .memoryFault(MemoryFault(errno: EFAULT, gpa: gpa, size: GuestMemory.pageSize))
    }
}
