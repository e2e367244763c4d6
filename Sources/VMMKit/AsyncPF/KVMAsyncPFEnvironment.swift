/// `AsyncPFEnvironment` on a real KVM vCPU: KVM_INTERRUPT with interrupt windows
/// without an in-kernel irqchip, an MSI to the vCPU's local APIC with one.
///
/// Queries read the vCPU's registers and events; #PF goes in through
/// `KVM_SET_VCPU_EVENTS` with a CR2 payload, the "ready" interrupt through
/// `KVM_INTERRUPT` once `ready_for_interrupt_injection` says the guest can take it
/// (until then `request_interrupt_window` is set, and `flushInterrupt()` retries on
/// the next exit). Use it on the vCPU's thread only.
public final class KVMAsyncPFEnvironment: AsyncPFEnvironment {
    public let vcpu: VCPU
    private let fetch: (UInt64) throws(VMMError) -> Void
    /// A "ready" vector waiting for the guest's interrupt window.
    public private(set) var pendingVector: UInt8?
    /// Set by `halt()`, cleared by `wake()`: the run loop keeps the vCPU out of the guest.
    public private(set) var isHalted = false

    /// `fetch` brings one page in synchronously (the demand-paging engine's job).
    public init(vcpu: VCPU, fetch: @escaping (UInt64) throws(VMMError) -> Void) {
        self.vcpu = vcpu
        self.fetch = fetch
    }

    public func currentPrivilegeLevel() throws(VMMError) -> Int {
        Int(try vcpu.specialRegisters().cs.selector & 3)
    }

    public func interruptsEnabled() throws(VMMError) -> Bool {
        try vcpu.registers().rflags & 0x200 != 0
    }

    public func pagingEnabled() throws(VMMError) -> Bool {
        try vcpu.specialRegisters().cr0 & 0x8000_0000 != 0
    }

    public func eventPending() throws(VMMError) -> Bool {
        if pendingVector != nil { return true }
        return try vcpu.hasPendingEvent()
    }

    public func readGuest32(_ gpa: UInt64) throws(VMMError) -> UInt32 {
        try vcpu.memory.read(gpa, as: UInt32.self)
    }

    public func writeGuest32(_ gpa: UInt64, _ value: UInt32) throws(VMMError) {
        try vcpu.memory.write(gpa, value)
    }

    public func injectPageFault(address: UInt64, errorCode: UInt32) throws(VMMError) {
        try vcpu.injectPageFault(address: address, errorCode: errorCode)
    }

    public func injectInterrupt(vector: UInt8) throws(VMMError) {
        if let vm = vcpu.vm, vm.hasIRQChip {
            // The in-kernel LAPIC holds the vector until the guest can take it.
            try vm.signalMSI(apicID: vcpu.id, vector: vector)
            return
        }
        // A vector still waiting for its window is superseded: one interrupt tells the
        // guest to look at the token slot (e.g. after a disable and re-enable).
        pendingVector = vector
        try flushInterrupt()
    }

    /// Injects the waiting vector if the guest can take it now, else asks KVM for an
    /// interrupt-window exit. Call before every entry.
    public func flushInterrupt() throws(VMMError) {
        guard let vector = pendingVector else { return }
        // Never beside a queued exception (the async #PF itself): the #PF handler runs
        // with IF = 0, and its iret opens the window for the interrupt.
        if vcpu.readyForInterruptInjection, try !exceptionOrNMIQueued() {
            try vcpu.interrupt(vector: UInt32(vector))
            pendingVector = nil
            vcpu.requestInterruptWindow = false
        } else {
            vcpu.requestInterruptWindow = true
        }
    }

    private func exceptionOrNMIQueued() throws(VMMError) -> Bool {
        let e = try vcpu.events()
        return e.exception.injected != 0 || e.exception.pending != 0 || e.nmi.injected != 0 || e.nmi.pending != 0
    }

    public func injectNMI() throws(VMMError) { try vcpu.injectNMI() }

    public func halt() throws(VMMError) { isHalted = true }
    public func wake() throws(VMMError) { isHalted = false }

    public func fetchPageSynchronously(_ gpa: UInt64) throws(VMMError) { try fetch(gpa) }
}
