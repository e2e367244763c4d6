import AsyncPFCore
import VMMPluginKit

/// The ABI 1.2 state extension: every vCPU's async-PF state machine (the in-flight
/// "not present", outstanding tokens, the ready queue, deferred events) and its
/// environment's waiting "ready" vector, as an `AsyncPFStateBlob` (version 1).
/// Restore posts a "ready" for every outstanding token: the restored memory has the page.
extension AsyncPFPlugin {
    var stateVersion: UInt32 { 1 }

    func saveState() throws -> [UInt8] {
        let all = slots.withLock { $0.sorted { $0.key < $1.key } }
        return AsyncPFStateBlob(vcpus: all.map { id, slot in
            .init(id: id, state: slot.state.saved, pendingVector: slot.env.pendingVector, halted: slot.env.isHalted)
        }).bytes
    }

    func restoreState(_ bytes: [UInt8], version: UInt32) throws {
        let blob: AsyncPFStateBlob
        do { blob = try AsyncPFStateBlob(decoding: bytes) } catch let e as VMMPluginError {
            throw VMMPluginError("\(Self.id): \(e)")
        }
        // Every field read and checked: now apply.
        for v in blob.vcpus {
            let slot = slot(v.id)
            slot.state.restore(v.state)
            slot.env.restore(pendingVector: v.pendingVector, isHalted: v.halted)
            for page in v.state.outstanding.values { _ = slot.post(.ready(gpa: page)) }
        }
    }
}
