import AsyncPFCore
import CAsyncPFPlugin
import CVMMPlugin
import Glibc
import Synchronization
import VMMPluginKit

/// User-space async page faults as a plugin: Linux's paravirtual protocol (CPUID
/// 0x40000001 ASYNC_PF/ASYNC_PF_INT, the three MSRs, the 64-byte area) with the
/// host-side tracking Thomas Gleixner proposed, i.e. `AsyncPFVCPUState` from
/// AsyncPFCore, the same code the in-process `AsyncPFController` runs, here over the
/// host's plugin services (ABI 1.1).
///
/// At init it routes the three MSRs to user space and advertises the CPUID bits
/// (vcpu/1), then handles: the MSR exits; PAGE_MISSING (raised by the host's demand
/// pager for a ring-3 vCPU at a clean boundary): "not present" + install_page_async, or
/// NOT_MINE (the host fetches synchronously); PAGE_READY (the page is in): "ready";
/// KICK and interrupt-window exits: deferred events and waiting "ready" interrupts.
/// A guest that never writes the MSRs sees the CPUID bits and nothing else.
///
/// Config (comma-separated key=value; unknown keys are refused, naming the key):
/// - `send_always_cpl0=0|1`: honour the guest's send-always bit (deliver "not present"
///   at CPL 0). Off by default: NMIs, #MC and #DB raised inside the guest can clobber
///   CR2 and the reason there, and the host cannot see them (Docs/AsyncPageFaults.md).
/// - `conflict_bound=N` (N >= 1, default 64): exits a real #PF or NMI may wait for the
///   guest to clear `flags` before the vCPU stops with an `async-pf conflict` diagnosis.
/// - `advertise=0|1` (default 1): 0 withdraws the CPUID bits (the MSRs then #GP).
///
/// It offers `org.vmmkit.async-pf.events/1` (vmm_async_pf_events_t): the VMM's own NMIs
/// and real #PFs, injected under the same rule (held back while "not present" is unread).
final class AsyncPFPlugin: VMMPlugin, PluginStateful {
    static let id = "org.vmmkit.async-pf"
    static let keys = ["send_always_cpl0", "conflict_bound", "advertise"]

    private let host: PluginServices
    private let vcpuExt: UnsafePointer<vmm_host_vcpu_t>
    private let pagerExt: UnsafePointer<vmm_host_pager_t>
    let policy: AsyncPFPolicy
    /// One slot per vCPU, created on its first record; each is used on its vCPU's thread.
    /// Pairs searched in order, not a `[UInt32: AsyncPFPluginSlot]`: the first such
    /// dictionary makes the runtime scan every loaded image's conformance records, and
    /// this one is built at every `vmm run` (~0.26 million instructions, callgrind).
    let slots = Mutex<[(key: UInt32, value: AsyncPFPluginSlot)]>([])
    /// The events extension table (allocated once init cannot fail any more).
    private var events: UnsafeMutablePointer<vmm_async_pf_events_t>?

    init(host: PluginServices, config: PluginConfig) throws {
        try config.allowOnly(Self.keys, plugin: Self.id)
        let bound = try config.integer("conflict_bound", default: 64, plugin: Self.id)
        guard (1...1_000_000).contains(bound) else {
            throw VMMPluginError("\(Self.id): conflict_bound=\(bound) is out of range (1 to 1000000 exits)")
        }
        policy = AsyncPFPolicy(allowKernelModeDelivery: try Self.flag(config, "send_always_cpl0", default: false),
                               conflictExitBound: Int(bound),
                               featuresAdvertised: try Self.flag(config, "advertise", default: true))
        self.host = host
        vcpuExt = try Self.table(host, VMM_EXT_HOST_VCPU, vmm_host_vcpu_t.self)
        pagerExt = try Self.table(host, VMM_EXT_HOST_PAGER, vmm_host_pager_t.self)
        try takeOverFromTheKernel()
        // The handlers capture the plugin unowned: the host destroys it only after the VM stopped.
        try host.registerRaw(VMM_EXIT_MSR, base: UInt64(AsyncPFABI.msrEnable),
                             length: UInt64(AsyncPFABI.msrAck - AsyncPFABI.msrEnable + 1), priority: 100,
                             name: "async-pf-msrs") { [unowned(unsafe) self] in try msr($0) }
        // KVM exit reason 7 (KVM_EXIT_IRQ_WINDOW_OPEN): a "ready" waiting for its window.
        try host.registerRaw(VMM_EXIT_OTHER, base: 7, length: 1, priority: 100, name: "async-pf-irq-window") {
            [unowned(unsafe) self] in try interruptWindow($0)
        }
        try host.registerRaw(VMM_EXIT_ASYNC_PF, base: 0, length: 0, priority: 100, name: "async-pf") {
            [unowned(unsafe) self] in try event($0)
        }
        events = Self.makeEvents(for: self)
    }

    deinit { events?.deallocate() }

    func pluginExtension(_ id: String) -> UnsafeRawPointer? {
        id == VMM_ASYNC_PF_PLUGIN_EVENTS ? events.map { UnsafeRawPointer($0) } : nil
    }

    /// vmm_async_pf_events_t for this instance: requests go to the vCPU's inbox, and the
    /// vCPU is kicked so its thread injects them (or holds them back).
    private static func makeEvents(for plugin: AsyncPFPlugin) -> UnsafeMutablePointer<vmm_async_pf_events_t> {
        let t = UnsafeMutablePointer<vmm_async_pf_events_t>.allocate(capacity: 1)
        t.initialize(to: vmm_async_pf_events_t())
        t.pointee.struct_size = UInt32(MemoryLayout<vmm_async_pf_events_t>.size)
        t.pointee.instance = Unmanaged.passUnretained(plugin).toOpaque()
        t.pointee.request_nmi = { instance, vcpuID in
            guard let instance else { return -EINVAL }
            return Unmanaged<AsyncPFPlugin>.fromOpaque(instance).takeUnretainedValue().slot(vcpuID).post(.nmi)
        }
        t.pointee.request_page_fault = { instance, vcpuID, address, errorCode in
            guard let instance else { return -EINVAL }
            return Unmanaged<AsyncPFPlugin>.fromOpaque(instance).takeUnretainedValue().slot(vcpuID)
                .post(.pageFault(address: address, errorCode: errorCode))
        }
        return t
    }

    func shutdown() {
        let all = slots.withLock { $0.sorted { $0.key < $1.key } }
        for (id, slot) in all {
            let s = slot.state.statistics
            host.log(.info, "vCPU \(id): not-present \(s.notPresentInjected), ready \(s.readyInjected), synchronous \(s.synchronousFetches), "
                + "halts \(s.halts), deferred #PF \(s.deferredPageFaults), deferred NMI \(s.deferredNMIs)")
            // What is still waiting: a guest task blocked for ever shows up here.
            let w = slot.state.saved
            guard w.inFlight != nil || !w.outstanding.isEmpty || w.readyPending != nil || !w.readyQueue.isEmpty
                || slot.env.pendingVector != nil else { continue }
            let hex = { (v: UInt64) in "0x" + String(v, radix: 16) }
            host.log(.info, "vCPU \(id) at the end: in flight \(w.inFlight.map { "token \(hex(UInt64($0.token))) page \(hex($0.page))" } ?? "none"), "
                + "outstanding [\(w.outstanding.sorted { $0.key < $1.key }.map { "\(hex(UInt64($0.key))): \(hex($0.value))" }.joined(separator: ", "))], "
                + "ready pending \(w.readyPending.map { hex(UInt64($0)) } ?? "none"), queued \(w.readyQueue.map { hex(UInt64($0)) }), "
                + "vector waiting for a window \(slot.env.pendingVector.map { String($0) } ?? "none")")
        }
    }

    private static func flag(_ config: PluginConfig, _ key: String, default fallback: Bool) throws -> Bool {
        switch config[key] {
        case nil: return fallback
        case "0": return false
        case "1": return true
        case let value?: throw VMMPluginError("\(id): bad value '\(value)' for key '\(key)' (0 or 1)")
        }
    }

    private static func table<T>(_ host: PluginServices, _ id: String, _: T.Type) throws -> UnsafePointer<T> {
        guard let raw = host.hostExtension(id),
              raw.load(as: UInt32.self) >= UInt32(MemoryLayout<T>.size) else {
            throw VMMPluginError("\(Self.id): the host does not offer '\(id)' (plugin ABI 1.1); this host cannot run async page faults as a plugin")
        }
        return raw.assumingMemoryBound(to: T.self)
    }

    /// The three MSRs exit to user space (the kernel's own async PF never turns on) and
    /// CPUID advertises ASYNC_PF and ASYNC_PF_INT, never ASYNC_PF_VMEXIT.
    private func takeOverFromTheKernel() throws {
        let data = host.raw.pointee.host_data
        var error: UnsafePointer<CChar>?
        func refuse(_ what: String) -> VMMPluginError {
            VMMPluginError("\(Self.id): \(what): " + (error.map { String(cString: $0) } ?? "no message"))
        }
        let msrs = AsyncPFABI.msrs
        guard msrs.withUnsafeBufferPointer({ vcpuExt.pointee.route_msrs(data, $0.baseAddress, UInt32($0.count), &error) }) == 0 else {
            throw refuse("cannot route the async PF MSRs to user space")
        }
        let both = AsyncPFABI.featureAsyncPF | AsyncPFABI.featureAsyncPFInt
        let set = policy.featuresAdvertised ? both : 0
        let clear = AsyncPFABI.featureAsyncPFVMExit | (policy.featuresAdvertised ? 0 : both)
        guard vcpuExt.pointee.set_cpuid_bits(data, AsyncPFABI.featuresLeaf, 0, VMM_CPUID_EAX, set, clear, &error) == 0 else {
            throw refuse("cannot set the async PF CPUID bits")
        }
    }

    func slot(_ vcpuID: UInt32) -> AsyncPFPluginSlot {
        slots.withLock { slots in
            if let slot = slots.first(where: { $0.key == vcpuID })?.value { return slot }
            let slot = AsyncPFPluginSlot(vcpuID: vcpuID, policy: policy, host: host, vcpuExt: vcpuExt, pagerExt: pagerExt)
            slots.append((vcpuID, slot))
            return slot
        }
    }

    private func msr(_ record: UnsafeMutablePointer<vmm_exit_t>) throws -> PluginVerdict {
        try slot(record.pointee.vcpu_id).msr(&record.pointee.msr)
    }

    private func interruptWindow(_ record: UnsafeMutablePointer<vmm_exit_t>) throws -> PluginVerdict {
        try slot(record.pointee.vcpu_id).interruptWindow()
    }

    private func event(_ record: UnsafeMutablePointer<vmm_exit_t>) throws -> PluginVerdict {
        let event = record.pointee.async_pf
        // A record for no vCPU (PAGE_READY from another plugin's fetcher may say
        // VMM_VCPU_NONE) is not one this plugin's tokens can be waiting for: a slot made
        // for it kept every such record in an inbox nobody served, for good.
        guard record.pointee.vcpu_id != VMM_VCPU_NONE else { return .notMine }
        return try slot(record.pointee.vcpu_id).event(kind: event.kind, gpa: event.gpa)
    }
}
