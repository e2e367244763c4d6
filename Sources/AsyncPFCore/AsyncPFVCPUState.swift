/// Policy knobs of the async page fault state machine.
public struct AsyncPFPolicy: Sendable, Equatable {
    /// Honour the guest's send-always bit (deliver "not present" at CPL 0). Off by
    /// default: at CPL 0 an NMI, #MC or #DB can hit between the async #PF and the
    /// guest's read of CR2 and flags, fault itself, and clobber both; the host cannot
    /// see those faults (they never leave the guest), so the race cannot be closed.
    public var allowKernelModeDelivery = false
    /// How many exits a real #PF (or NMI) may wait for the guest to clear `flags`
    /// before the vCPU stops with an `async-pf conflict` diagnosis.
    public var conflictExitBound = 64
    /// Whether CPUID advertises ASYNC_PF and ASYNC_PF_INT; if not, the MSRs #GP.
    public var featuresAdvertised = true

    public init(allowKernelModeDelivery: Bool = false, conflictExitBound: Int = 64, featuresAdvertised: Bool = true) {
        self.allowKernelModeDelivery = allowKernelModeDelivery
        self.conflictExitBound = conflictExitBound
        self.featuresAdvertised = featuresAdvertised
    }
}

/// The answer to a guest WRMSR of one of the three MSRs.
public enum AsyncPFMSRResult: Sendable, Equatable {
    case accepted
    /// The guest takes #GP; the string says why (for traces and tests).
    case generalProtection(String)
}

/// What happened to a fault on a missing page.
public enum AsyncPFFaultOutcome: Sendable, Equatable {
    /// "Not present" is queued for the guest; fetch the page in the background and call
    /// `pageReady(token:)` when it is installed.
    case notPresentInjected(token: UInt32)
    /// The page is already being fetched for this vCPU: it stays halted until then.
    case halted
    /// Delivery was not allowed; the page was fetched before returning.
    case fetchedSynchronously
}

/// A misuse of the state machine by its VMM (not a guest error).
public struct AsyncPFError: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String
    public init(_ message: String) { description = message }
}

/// The guest did not clear `flags` within the bound while a real event waited.
public struct AsyncPFConflict: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// Counters for tests, traces and benchmarks.
public struct AsyncPFStatistics: Sendable, Equatable {
    public var notPresentInjected = 0
    public var readyInjected = 0
    public var synchronousFetches = 0
    public var halts = 0
    public var deferredPageFaults = 0
    public var deferredNMIs = 0
}

/// The per-vCPU async page fault state machine: the host-side tracking Thomas Gleixner
/// proposed for the race Andy Lutomirski found (an NMI or real #PF arriving while an
/// async "not present" is unread clobbers CR2 and the reason).
///
/// The host knows exactly which async #PF it injected; while the guest has not cleared
/// `flags` it never injects anything that would overwrite CR2 or `flags` (a real #PF or
/// an NMI is deferred instead), and it injects no second async #PF.
///
/// Pure logic: every effect goes through an `AsyncPFEnvironment`. Not thread-safe: use
/// it from the vCPU's thread (completions from fetcher threads are handed over there).
public final class AsyncPFVCPUState {
    public let vcpuID: UInt32
    public let policy: AsyncPFPolicy
    /// The last value the guest wrote to MSR_KVM_ASYNC_PF_EN.
    public private(set) var enableValue: UInt64 = 0
    /// The "page ready" vector, once the guest has set it.
    public private(set) var vector: UInt8?
    /// The "not present" the guest has not yet acknowledged (by clearing `flags`).
    public private(set) var inFlight: (token: UInt32, page: UInt64)?
    /// Pages being fetched for this vCPU, by token.
    public private(set) var outstanding: [UInt32: UInt64] = [:]
    /// The "ready" token delivered and not yet acknowledged through MSR_KVM_ASYNC_PF_ACK.
    public private(set) var readyPending: UInt32?
    /// Ready tokens waiting behind `readyPending`, oldest first.
    public private(set) var readyQueue: [UInt32] = []
    /// A real #PF held back while `flags` is set.
    public private(set) var deferredPageFault: (address: UInt64, errorCode: UInt32)?
    public private(set) var deferredNMI = false
    /// The page this vCPU is halted on, if any.
    public private(set) var haltedOn: UInt64?
    public private(set) var statistics = AsyncPFStatistics()
    private var conflictExits = 0
    private var nextID: UInt32 = 1

    public init(vcpuID: UInt32, policy: AsyncPFPolicy = AsyncPFPolicy()) {
        self.vcpuID = vcpuID
        self.policy = policy
    }

    /// Enabled with interrupt delivery: the only mode this implementation offers (as
    /// KVM since 5.9, where "ready" through `flags` was removed).
    public var isEnabled: Bool {
        let both = AsyncPFABI.enabled | AsyncPFABI.deliveryAsInterrupt
        return enableValue & both == both && vector != nil
    }

    public var areaAddress: UInt64 { enableValue & AsyncPFABI.areaAddressMask }

    // MARK: MSRs

    /// Handles a guest WRMSR; nil if `index` is not one of the three MSRs.
    public func writeMSR(_ index: UInt32, value: UInt64, env: some AsyncPFEnvironment) throws -> AsyncPFMSRResult? {
        guard AsyncPFABI.msrs.contains(index) else { return nil }
        guard policy.featuresAdvertised else {
            return .generalProtection("MSR \(hex(index)) written but async PF is not advertised in CPUID")
        }
        switch index {
        case AsyncPFABI.msrInterrupt:
            guard value & ~0xff == 0 else { return .generalProtection("MSR_KVM_ASYNC_PF_INT: reserved bits set in \(hex(value))") }
            guard value >= 32 else { return .generalProtection("MSR_KVM_ASYNC_PF_INT: vector \(value) is an exception vector") }
            vector = UInt8(value)
            return .accepted
        case AsyncPFABI.msrAck:
            if value & 1 != 0 {
                readyPending = nil
                try deliverNextReady(env)
            }
            return .accepted
        default:
            return try writeEnable(value, env: env)
        }
    }

    private func writeEnable(_ value: UInt64, env: some AsyncPFEnvironment) throws -> AsyncPFMSRResult {
        if value & AsyncPFABI.reservedEnableBits != 0 {
            return .generalProtection("MSR_KVM_ASYNC_PF_EN: reserved bits 5:4 set in \(hex(value))")
        }
        if value & AsyncPFABI.deliveryAsPFVMExit != 0 {
            return .generalProtection("MSR_KVM_ASYNC_PF_EN: delivery as #PF vmexit is not advertised")
        }
        if value & AsyncPFABI.deliveryAsInterrupt != 0, vector == nil {
            return .generalProtection("MSR_KVM_ASYNC_PF_EN: interrupt delivery enabled before MSR_KVM_ASYNC_PF_INT set the vector")
        }
        if value & AsyncPFABI.enabled != 0 {
            let area = value & AsyncPFABI.areaAddressMask
            // The area's last word. Not area + 64 - 4: an area in the top 64 bytes (the
            // guest's choice) made that sum pass 2^64 and trap.
            do throws { _ = try env.readGuest32(area + (UInt64(AsyncPFABI.areaSize) - 4)) } catch {
                return .generalProtection("MSR_KVM_ASYNC_PF_EN: area \(hex(area)) is not guest RAM")
            }
        }
        let wasEnabled = isEnabled
        enableValue = value
        if wasEnabled && !isEnabled { try dropEverything(env) }
        return .accepted
    }

    /// Disabling: nothing queued survives, and no vCPU may stay halted on a page whose
    /// "ready" will never be sent.
    private func dropEverything(_ env: some AsyncPFEnvironment) throws {
        readyQueue.removeAll()
        readyPending = nil
        outstanding.removeAll()
        inFlight = nil
        if haltedOn != nil {
            haltedOn = nil
            try env.wake()
        }
    }

    /// Handles a guest RDMSR; nil if `index` is not one of the three MSRs.
    public func readMSR(_ index: UInt32) -> UInt64? {
        switch index {
        case AsyncPFABI.msrEnable: enableValue
        case AsyncPFABI.msrInterrupt: UInt64(vector ?? 0)
        case AsyncPFABI.msrAck: 0
        default: nil
        }
    }

    // MARK: Faults

    /// The vCPU touched the missing page containing `gpa`.
    public func pageMissing(_ gpa: UInt64, env: some AsyncPFEnvironment) throws -> AsyncPFFaultOutcome {
        let page = gpa & ~(AsyncPFABI.pageSize - 1)
        if outstanding.values.contains(page) {
            haltedOn = page
            statistics.halts += 1
            try env.halt()
            return .halted
        }
        guard try canInjectNotPresent(env) else {
            statistics.synchronousFetches += 1
            try env.fetchPageSynchronously(page)
            return .fetchedSynchronously
        }
        let token = makeToken()
        try env.writeGuest32(areaAddress + AsyncPFABI.flagsOffset, AsyncPFABI.reasonPageNotPresent)
        try env.injectPageFault(address: UInt64(token), errorCode: AsyncPFABI.notPresentErrorCode)
        inFlight = (token, page)
        outstanding[token] = page
        statistics.notPresentInjected += 1
        return .notPresentInjected(token: token)
    }

    /// Tokens a vCPU may have waiting (outstanding or queued as "ready") before a
    /// missing page is fetched synchronously instead, as KVM's ASYNC_PF_PER_VCPU (64):
    /// a guest that never acknowledges would otherwise grow the queue without bound,
    /// and once the 2^20 tokens were all taken `makeToken` would find none.
    public static let tokensInUseLimit = 64

    private func canInjectNotPresent(_ env: some AsyncPFEnvironment) throws -> Bool {
        guard isEnabled, inFlight == nil, outstanding.count + readyQueue.count < Self.tokensInUseLimit else { return false }
        let cpl = try env.currentPrivilegeLevel()
        let kernelAllowed = enableValue & AsyncPFABI.sendAlways != 0 && policy.allowKernelModeDelivery
        guard cpl == 3 || kernelAllowed else { return false }
        guard try env.pagingEnabled(), try env.interruptsEnabled(), !(try env.eventPending()) else { return false }
        return try env.readGuest32(areaAddress + AsyncPFABI.flagsOffset) == 0
    }

    /// KVM's token scheme: a per-vCPU sequence number above the vCPU id, so tokens are
    /// unique across vCPUs; never 0 and never the wake-all token. After 2^20 tokens the
    /// sequence wraps: a token still waiting as a "ready" (queued or unacknowledged) is
    /// skipped too, or the guest would get one token for two pages (and a snapshot
    /// then holds a state its restore refuses; found by fuzz-async-pf).
    private func makeToken() -> UInt32 {
        while true {
            let token = (nextID << 12) | (vcpuID & 0xfff)
            nextID = (nextID &+ 1) & 0xf_ffff
            if token != 0 && token != AsyncPFABI.wakeAllToken && outstanding[token] == nil
                && readyPending != token && !readyQueue.contains(token) { return token }
        }
    }

    /// The page fetched for `token` is installed in guest memory. Unknown tokens (e.g.
    /// dropped by a disable meanwhile) are ignored.
    public func pageReady(token: UInt32, env: some AsyncPFEnvironment) throws {
        guard let page = outstanding.removeValue(forKey: token) else { return }
        if haltedOn == page {
            haltedOn = nil
            try env.wake()
        }
        guard isEnabled else { return }
        readyQueue.append(token)
        try deliverNextReady(env)
    }

    /// "Ready" goes out only when the previous one was acknowledged and the guest has
    /// emptied the token slot; otherwise it waits in the queue.
    private func deliverNextReady(_ env: some AsyncPFEnvironment) throws {
        guard isEnabled, readyPending == nil, let token = readyQueue.first, let vector else { return }
        guard try env.readGuest32(areaAddress + AsyncPFABI.tokenOffset) == 0 else { return }
        readyQueue.removeFirst()
        try env.writeGuest32(areaAddress + AsyncPFABI.tokenOffset, token)
        try env.injectInterrupt(vector: vector)
        readyPending = token
        statistics.readyInjected += 1
    }

    // MARK: Real events

    /// Whether the guest still has an async "not present" it has not read.
    private func asyncUnread(_ env: some AsyncPFEnvironment) throws -> Bool {
        guard isEnabled else { return false }
        return try env.readGuest32(areaAddress + AsyncPFABI.flagsOffset) != 0
    }

    /// A real #PF the VMM must give the guest. Injected now unless the guest has not yet
    /// read an async one (then CR2 would be clobbered): then deferred. Returns whether it
    /// was injected now.
    @discardableResult
    public func injectPageFault(address: UInt64, errorCode: UInt32, env: some AsyncPFEnvironment) throws -> Bool {
        if deferredPageFault == nil, try !asyncUnread(env), try !env.eventPending() {
            try env.injectPageFault(address: address, errorCode: errorCode)
            return true
        }
        if deferredPageFault != nil {
            throw AsyncPFError("async PF: vCPU \(vcpuID) already holds back a real #PF at \(hex(deferredPageFault!.address))")
        }
        deferredPageFault = (address, errorCode)
        statistics.deferredPageFaults += 1
        return false
    }

    /// An NMI for the guest: its handler may fault and clobber an unread async reason,
    /// so it waits until the guest has cleared `flags`.
    @discardableResult
    public func injectNMI(env: some AsyncPFEnvironment) throws -> Bool {
        if !deferredNMI, try !asyncUnread(env) {
            try env.injectNMI()
            return true
        }
        deferredNMI = true
        statistics.deferredNMIs += 1
        return false
    }

    // MARK: Every exit

    /// Runs on every exit of this vCPU, before it re-enters: acknowledges the in-flight
    /// "not present" once the guest cleared `flags`, then delivers a deferred real #PF,
    /// then a deferred NMI, then a queued "ready". Returns an `AsyncPFConflict` (the
    /// vCPU should stop with its message) when the guest kept `flags` set for more than
    /// `policy.conflictExitBound` exits while something waited.
    public func exit(env: some AsyncPFEnvironment) throws -> AsyncPFConflict? {
        guard inFlight != nil || deferredPageFault != nil || deferredNMI || !readyQueue.isEmpty else { return nil }
        let unread = try asyncUnread(env)
        if !unread { inFlight = nil }
        if deferredPageFault != nil || deferredNMI {
            if unread {
                conflictExits += 1
                if conflictExits > policy.conflictExitBound { return conflict() }
                return nil
            }
            conflictExits = 0
            if let fault = deferredPageFault, try !env.eventPending() {
                deferredPageFault = nil
                try env.injectPageFault(address: fault.address, errorCode: fault.errorCode)
            }
            if deferredNMI {
                deferredNMI = false
                try env.injectNMI()
            }
        }
        try deliverNextReady(env)
        return nil
    }

    private func conflict() -> AsyncPFConflict {
        var what: [String] = []
        if let f = deferredPageFault { what.append("a real #PF at \(hex(f.address)) (error code \(hex(f.errorCode)))") }
        if deferredNMI { what.append("an NMI") }
        let async = inFlight.map { "token \(hex($0.token)) for page \(hex($0.page))" } ?? "no async #PF in flight"
        return AsyncPFConflict(message: "async-pf conflict: vCPU \(vcpuID) left the async PF flags set (\(async)) for "
            + "\(policy.conflictExitBound) exits while \(what.joined(separator: " and ")) waited; injecting it would clobber CR2 and the reason")
    }
}

/// Save and restore live here: the fields are private(set) to this file.
extension AsyncPFVCPUState {
    public var saved: AsyncPFSavedState {
        var s = AsyncPFSavedState()
        (s.enableValue, s.vector, s.inFlight, s.outstanding) = (enableValue, vector, inFlight, outstanding)
        (s.readyPending, s.readyQueue, s.deferredPageFault, s.deferredNMI) = (readyPending, readyQueue, deferredPageFault, deferredNMI)
        (s.haltedOn, s.conflictExits, s.nextID) = (haltedOn, conflictExits, nextID)
        return s
    }

    /// Replaces the state with a saved one (before the vCPU runs again).
    public func restore(_ s: AsyncPFSavedState) {
        (enableValue, vector, inFlight, outstanding) = (s.enableValue, s.vector, s.inFlight, s.outstanding)
        (readyPending, readyQueue, deferredPageFault, deferredNMI) = (s.readyPending, s.readyQueue, s.deferredPageFault, s.deferredNMI)
        (haltedOn, conflictExits, nextID) = (s.haltedOn, s.conflictExits, s.nextID)
    }
}

/// "0x..." for messages (VMMKit has its own; this module depends on nothing).
func hex<T: BinaryInteger>(_ value: T) -> String { "0x" + String(value, radix: 16) }
