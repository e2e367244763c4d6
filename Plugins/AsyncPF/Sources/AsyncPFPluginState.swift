import AsyncPFCore
import VMMPluginKit

/// The ABI 1.2 state extension: every vCPU's async-PF state machine (the in-flight
/// "not present", outstanding tokens, the ready queue, deferred events) and its
/// environment's waiting "ready" vector. Version 1, little-endian (StateWriter):
///   u32 slots; per slot: u32 vcpu, u64 enable, opt u8 vector, opt (u32 token, u64 page),
///   u32 n, n * (u32 token, u64 page), opt u32 readyPending, u32 n, n * u32,
///   opt (u64 address, u32 error code), bool deferredNMI, opt u64 haltedOn,
///   u32 conflictExits, u32 nextID, opt u8 pendingVector, bool halted
/// where "opt X" is a bool then X when true.
/// Restore posts a "ready" for every outstanding token: the restored memory has the page.
extension AsyncPFPlugin {
    var stateVersion: UInt32 { 1 }
    static let maxSlots = 4096, maxTokens = 1 << 16

    func saveState() throws -> [UInt8] {
        var w = StateWriter()
        let all = slots.withLock { $0.sorted { $0.key < $1.key } }
        w.u32(UInt32(all.count))
        for (id, slot) in all {
            let s = slot.state.saved
            w.u32(id)
            w.u64(s.enableValue)
            w.bool(s.vector != nil); if let v = s.vector { w.u8(v) }
            w.bool(s.inFlight != nil); if let f = s.inFlight { w.u32(f.token); w.u64(f.page) }
            w.u32(UInt32(s.outstanding.count))
            for (token, page) in s.outstanding.sorted(by: { $0.key < $1.key }) { w.u32(token); w.u64(page) }
            w.bool(s.readyPending != nil); if let r = s.readyPending { w.u32(r) }
            w.u32(UInt32(s.readyQueue.count)); for t in s.readyQueue { w.u32(t) }
            w.bool(s.deferredPageFault != nil); if let d = s.deferredPageFault { w.u64(d.address); w.u32(d.errorCode) }
            w.bool(s.deferredNMI)
            w.bool(s.haltedOn != nil); if let h = s.haltedOn { w.u64(h) }
            w.u32(UInt32(clamping: s.conflictExits))
            w.u32(s.nextID)
            w.bool(slot.env.pendingVector != nil); if let v = slot.env.pendingVector { w.u8(v) }
            w.bool(slot.env.isHalted)
        }
        return w.bytes
    }

    func restoreState(_ bytes: [UInt8], version: UInt32) throws {
        var r = StateReader(bytes)
        let count = try r.u32()
        guard count <= Self.maxSlots else { throw VMMPluginError("\(Self.id): state holds \(count) vCPUs (at most \(Self.maxSlots))") }
        var decoded: [(UInt32, AsyncPFSavedState, UInt8?, Bool)] = []
        var seen = Set<UInt32>()
        for _ in 0..<count {
            let id = try r.u32()
            guard seen.insert(id).inserted else { throw VMMPluginError("\(Self.id): state holds vCPU \(id) twice") }
            var s = AsyncPFSavedState()
            s.enableValue = try r.u64()
            if try r.bool() { s.vector = try r.u8() }
            if try r.bool() { s.inFlight = (try r.u32(), try r.u64()) }
            let n = try r.u32()
            guard n <= Self.maxTokens else { throw VMMPluginError("\(Self.id): \(n) outstanding tokens (at most \(Self.maxTokens))") }
            for _ in 0..<n {
                let t = try r.u32()
                guard s.outstanding.updateValue(try r.u64(), forKey: t) == nil else {
                    throw VMMPluginError("\(Self.id): vCPU \(id): outstanding token 0x\(String(t, radix: 16)) twice")
                }
            }
            if try r.bool() { s.readyPending = try r.u32() }
            let q = try r.u32()
            guard q <= Self.maxTokens else { throw VMMPluginError("\(Self.id): \(q) queued ready tokens (at most \(Self.maxTokens))") }
            for _ in 0..<q { s.readyQueue.append(try r.u32()) }
            if try r.bool() { s.deferredPageFault = (try r.u64(), try r.u32()) }
            s.deferredNMI = try r.bool()
            if try r.bool() { s.haltedOn = try r.u64() }
            s.conflictExits = Int(try r.u32())
            s.nextID = try r.u32()
            guard s.nextID <= 0xf_ffff else { throw VMMPluginError("\(Self.id): token sequence number \(s.nextID) (at most 0xfffff)") }
            let pending: UInt8? = try r.bool() ? try r.u8() : nil
            if let why = s.problem(vcpu: id) { throw VMMPluginError("\(Self.id): vCPU \(id): \(why)") }
            if let pending, pending < 32 { throw VMMPluginError("\(Self.id): vCPU \(id): waiting interrupt vector \(pending) is an exception vector") }
            decoded.append((id, s, pending, try r.bool()))
        }
        try r.finish()
        // Every field read and checked: now apply.
        for (id, s, pending, halted) in decoded {
            let slot = slot(id)
            slot.state.restore(s)
            slot.env.restore(pendingVector: pending, isHalted: halted)
            for page in s.outstanding.values { _ = slot.post(.ready(gpa: page)) }
        }
    }
}
