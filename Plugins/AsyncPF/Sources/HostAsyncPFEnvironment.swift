import AsyncPFCore
import CVMMPlugin
import Glibc
import VMMPluginKit

/// `AsyncPFEnvironment` over the host's plugin services (ABI 1.1): registers through
/// get_reg, events through vcpu/1, injections through inject_exception (#PF with the
/// CR2 payload), inject_interrupt (the host requests the interrupt window when the
/// guest cannot take it yet) and inject_nmi. Used on its vCPU's thread only, during a
/// record the host gave this plugin for that vCPU.
final class HostAsyncPFEnvironment: AsyncPFEnvironment {
    let vcpuID: UInt32
    private let host: PluginServices
    private let vcpuExt: UnsafePointer<vmm_host_vcpu_t>
    /// A "ready" vector waiting for the guest's interrupt window.
    private(set) var pendingVector: UInt8?
    /// Set by `halt()`: the vCPU faulted on a page already on its way.
    private(set) var isHalted = false
    /// Set when the state machine wants the page now: the PAGE_MISSING handler then
    /// answers NOT_MINE and the host fetches it before the vCPU resumes.
    var wantsSynchronousFetch = false

    init(vcpuID: UInt32, host: PluginServices, vcpuExt: UnsafePointer<vmm_host_vcpu_t>) {
        self.vcpuID = vcpuID
        self.host = host
        self.vcpuExt = vcpuExt
    }

    private var data: UnsafeMutableRawPointer? { host.raw.pointee.host_data }

    /// For the plugin's state extension (snapshot/restore).
    func restore(pendingVector: UInt8?, isHalted: Bool) { (self.pendingVector, self.isHalted) = (pendingVector, isHalted) }

    private func check(_ rc: Int32, _ what: String) throws {
        guard rc == 0 else { throw VMMPluginError("vCPU \(vcpuID): \(what) failed with errno \(-rc)") }
    }

    func currentPrivilegeLevel() throws -> Int { Int(try host.register(VMM_REG_CPL, vcpu: vcpuID)) }
    func interruptsEnabled() throws -> Bool { try host.register(VMM_REG_RFLAGS, vcpu: vcpuID) & 0x200 != 0 }
    func pagingEnabled() throws -> Bool { try host.register(VMM_REG_CR0, vcpu: vcpuID) & 0x8000_0000 != 0 }

    /// The VMM_EVENT_* bits queued for the next entry.
    func queuedEvents() throws -> UInt32 {
        var bits: UInt32 = 0
        try check(vcpuExt.pointee.pending_events(data, vcpuID, &bits), "pending_events")
        return bits
    }

    func eventPending() throws -> Bool { try pendingVector != nil || queuedEvents() != 0 }

    func readGuest32(_ gpa: UInt64) throws -> UInt32 {
        var value: UInt32 = 0
        try withUnsafeMutableBytes(of: &value) { try host.readGuest(gpa, into: $0) }
        return UInt32(littleEndian: value)
    }

    func writeGuest32(_ gpa: UInt64, _ value: UInt32) throws {
        try withUnsafeBytes(of: value.littleEndian) { try host.writeGuest(gpa, from: $0) }
    }

    func injectPageFault(address: UInt64, errorCode: UInt32) throws {
        let rc = host.raw.pointee.inject_exception(data, vcpuID, UInt32(AsyncPFABI.pageFaultVector), 1, errorCode, 1, address)
        try check(rc, "inject_exception(#PF, payload \(String(address, radix: 16)))")
    }

    func injectInterrupt(vector: UInt8) throws {
        // A vector still waiting for its window is superseded: one interrupt tells the
        // guest to look at the token slot.
        pendingVector = vector
        try flushInterrupt()
    }

    /// Injects the waiting vector if the guest can take it now; otherwise the host has
    /// asked for an interrupt-window exit, where this is called again.
    func flushInterrupt() throws {
        guard let vector = pendingVector else { return }
        let rc = host.raw.pointee.inject_interrupt(data, vcpuID, UInt32(vector))
        if rc == -EAGAIN { return }
        if rc == -ENOTSUP {
            throw VMMPluginError("vCPU \(vcpuID): this host cannot deliver interrupts to a VM with an in-kernel irqchip (ABI 1.0 host)")
        }
        try check(rc, "inject_interrupt(\(vector))")
        pendingVector = nil
    }

    func injectNMI() throws { try check(vcpuExt.pointee.inject_nmi(data, vcpuID), "inject_nmi") }
    func halt() throws { isHalted = true }
    func wake() throws { isHalted = false }
    func fetchPageSynchronously(_ gpa: UInt64) throws { wantsSynchronousFetch = true }
}
