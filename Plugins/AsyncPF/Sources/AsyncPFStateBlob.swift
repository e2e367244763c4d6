import AsyncPFCore
import VMMPluginKit

/// The plugin's state blob apart from the plugin, so it can be fuzzed without a VM
/// (Fuzz/Targets/fuzz-async-pf): `init(decoding:)` reads and checks every field and
/// refuses what no vCPU of this plugin could have left; `bytes` is its inverse.
///
/// Version 1, little-endian (StateWriter):
///   u32 slots; per slot: u32 vcpu, u64 enable, opt u8 vector, opt (u32 token, u64 page),
///   u32 n, n * (u32 token, u64 page), opt u32 readyPending, u32 n, n * u32,
///   opt (u64 address, u32 error code), bool deferredNMI, opt u64 haltedOn,
///   u32 conflictExits, u32 nextID, opt u8 pendingVector, bool halted
/// where "opt X" is a bool then X when true. Outstanding tokens are written in ascending
/// order; a blob may hold them in any order (it then saves back sorted).
struct AsyncPFStateBlob {
    struct VCPU {
        var id: UInt32
        var state: AsyncPFSavedState
        /// The environment's interrupt waiting for a window, and whether it is halted.
        var pendingVector: UInt8?
        var halted: Bool
    }

    static let maxVCPUs = 4096
    /// More waiting tokens are refused before they are read (`problem(vcpu:)` also
    /// checks the sum of both lists).
    static let maxTokens = AsyncPFVCPUState.tokensInUseLimit
    var vcpus: [VCPU]

    init(vcpus: [VCPU]) { self.vcpus = vcpus }

    /// Errors name the vCPU and field, without the plugin's id (the caller adds it).
    init(decoding bytes: [UInt8]) throws {
        var r = StateReader(bytes)
        let count = try r.u32()
        guard count <= Self.maxVCPUs else { throw VMMPluginError("state holds \(count) vCPUs (at most \(Self.maxVCPUs))") }
        vcpus = []
        var seen = Set<UInt32>()
        for _ in 0..<count {
            let id = try r.u32()
            guard seen.insert(id).inserted else { throw VMMPluginError("state holds vCPU \(id) twice") }
            var s = AsyncPFSavedState()
            s.enableValue = try r.u64()
            if try r.bool() { s.vector = try r.u8() }
            if try r.bool() { s.inFlight = (try r.u32(), try r.u64()) }
            let n = try r.u32()
            guard n <= Self.maxTokens else { throw VMMPluginError("vCPU \(id): \(n) outstanding tokens (at most \(Self.maxTokens))") }
            for _ in 0..<n {
                let t = try r.u32()
                guard s.outstanding.updateValue(try r.u64(), forKey: t) == nil else {
                    throw VMMPluginError("vCPU \(id): outstanding token 0x\(String(t, radix: 16)) twice")
                }
            }
            if try r.bool() { s.readyPending = try r.u32() }
            let q = try r.u32()
            guard q <= Self.maxTokens else { throw VMMPluginError("vCPU \(id): \(q) queued ready tokens (at most \(Self.maxTokens))") }
            for _ in 0..<q { s.readyQueue.append(try r.u32()) }
            if try r.bool() { s.deferredPageFault = (try r.u64(), try r.u32()) }
            s.deferredNMI = try r.bool()
            if try r.bool() { s.haltedOn = try r.u64() }
            s.conflictExits = Int(try r.u32())
            s.nextID = try r.u32()
            guard s.nextID <= 0xf_ffff else { throw VMMPluginError("token sequence number \(s.nextID) (at most 0xfffff)") }
            let pending: UInt8? = try r.bool() ? try r.u8() : nil
            if let why = s.problem(vcpu: id) { throw VMMPluginError("vCPU \(id): \(why)") }
            if let pending, pending < 32 { throw VMMPluginError("vCPU \(id): waiting interrupt vector \(pending) is an exception vector") }
            vcpus.append(VCPU(id: id, state: s, pendingVector: pending, halted: try r.bool()))
        }
        try r.finish()
    }

    var bytes: [UInt8] {
        var w = StateWriter()
        w.u32(UInt32(vcpus.count))
        for v in vcpus {
            let s = v.state
            w.u32(v.id)
            w.u64(s.enableValue)
            w.bool(s.vector != nil); if let x = s.vector { w.u8(x) }
            w.bool(s.inFlight != nil); if let f = s.inFlight { w.u32(f.token); w.u64(f.page) }
            w.u32(UInt32(s.outstanding.count))
            for (token, page) in s.outstanding.sorted(by: { $0.key < $1.key }) { w.u32(token); w.u64(page) }
            w.bool(s.readyPending != nil); if let x = s.readyPending { w.u32(x) }
            w.u32(UInt32(s.readyQueue.count)); for t in s.readyQueue { w.u32(t) }
            w.bool(s.deferredPageFault != nil); if let d = s.deferredPageFault { w.u64(d.address); w.u32(d.errorCode) }
            w.bool(s.deferredNMI)
            w.bool(s.haltedOn != nil); if let h = s.haltedOn { w.u64(h) }
            w.u32(UInt32(clamping: s.conflictExits))
            w.u32(s.nextID)
            w.bool(v.pendingVector != nil); if let x = v.pendingVector { w.u8(x) }
            w.bool(v.halted)
        }
        return w.bytes
    }
}
