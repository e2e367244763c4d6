import AsyncPFCore
@testable import AsyncPFPlugin
import FuzzDriver

// The async page fault protocol (AsyncPFVCPUState) as a hostile guest drives it, and the
// AsyncPF plugin's state blob as a hostile snapshot gives it. The input is a program for
// one vCPU: MSR writes and reads, missing pages, pages made ready, real #PFs and NMIs the
// VMM injects, guest entries (the guest reads or scribbles over its 64-byte area), CPU
// state and RAM that fails, a save and restore of the machine, and a blob laid over its
// own saved state. After every step:
// - the machine is in a state its own restore takes (`problem(vcpu:)` is nil): else a
//   snapshot of a running guest could not be restored;
// - a real #PF was never injected over a pending event or an unread "not present"
//   (flags set), and an NMI never over an unread one (seed 2: that clobbers CR2 and the
//   reason); a "ready" interrupt only with its token in the area;
// - a blob the decoder refuses gets one line; one it takes saves back to the same length
//   (only the order of outstanding tokens may change), and that saves back as it is.
struct RAMFault: Error {}

final class Guest: AsyncPFEnvironment {
    var memory: [UInt64: UInt32] = [:]
    var ramSize: UInt64 = 1 << 20
    var cpl = 3, interrupts = true, paging = true, pending = false, fetchFails = false, halted = false
    /// The machine's area while async PF is on (the checks below apply only then).
    var area: () -> UInt64? = { nil }
    /// Within `pageMissing`, whose "not present" #PF is the one #PF that sets flags.
    var inPageMissing = false

    func word(_ gpa: UInt64) throws -> UInt64 {
        guard gpa < ramSize, ramSize - gpa >= 4 else { throw RAMFault() }
        return gpa
    }
    func currentPrivilegeLevel() throws -> Int { cpl }
    func interruptsEnabled() throws -> Bool { interrupts }
    func pagingEnabled() throws -> Bool { paging }
    func eventPending() throws -> Bool { pending }
    func readGuest32(_ gpa: UInt64) throws -> UInt32 { memory[try word(gpa)] ?? 0 }
    func writeGuest32(_ gpa: UInt64, _ value: UInt32) throws { memory[try word(gpa)] = value }
    func injectPageFault(address: UInt64, errorCode: UInt32) throws {
        check(!pending, "#PF (address \(address), error code \(errorCode)) injected over a pending event")
        if let area = area(), let flags = memory[area], flags != 0 {
            check(inPageMissing && flags == AsyncPFABI.reasonPageNotPresent && errorCode == AsyncPFABI.notPresentErrorCode,
                  "a real #PF at \(address) injected while the guest had not read flags \(flags)")
        }
        pending = true
    }
    func injectInterrupt(vector: UInt8) throws {
        check(vector >= 32, "interrupt vector \(vector) injected")
        if let area = area() { check((memory[area + 4] ?? 0) != 0, "a ready interrupt with no token in the area") }
    }
    func injectNMI() throws {
        if let area = area() { check((memory[area] ?? 0) == 0, "an NMI injected while the guest had not read flags \(memory[area] ?? 0)") }
    }
    func halt() throws { halted = true }
    func wake() throws { halted = false }
    func fetchPageSynchronously(_ gpa: UInt64) throws { if fetchFails { throw RAMFault() } }
}

let msrs = AsyncPFABI.msrs + [0x4b56_4d00]

func blob(_ state: AsyncPFVCPUState, _ guest: Guest) -> [UInt8] {
    AsyncPFStateBlob(vcpus: [.init(id: state.vcpuID, state: state.saved, pendingVector: nil, halted: guest.halted)]).bytes
}

/// A machine with `v`'s state restored into it (and the guest halted as `v` says),
/// checked to save back as it was given.
func restored(_ v: AsyncPFStateBlob.VCPU, policy: AsyncPFPolicy, guest: Guest) -> AsyncPFVCPUState {
    let state = AsyncPFVCPUState(vcpuID: v.id, policy: policy)
    state.restore(v.state)
    let again = AsyncPFStateBlob(vcpus: [.init(id: v.id, state: state.saved, pendingVector: v.pendingVector, halted: v.halted)]).bytes
    check(again == AsyncPFStateBlob(vcpus: [v]).bytes, "a restored vCPU \(v.id) saved back as other bytes")
    guest.area = { [unowned state] in state.isEnabled ? state.areaAddress : nil }
    guest.halted = v.halted
    return state
}

runFuzzer { data, size in
    let input = FuzzReader(Array(fuzzInput(data, size)))
    let flags = input.u8()
    let policy = AsyncPFPolicy(allowKernelModeDelivery: flags & 1 != 0, conflictExitBound: Int(flags >> 4) + 1,
                               featuresAdvertised: flags & 2 == 0)
    let guest = Guest()
    var state = restored(.init(id: input.u32(), state: AsyncPFSavedState(), pendingVector: nil, halted: false),
                         policy: policy, guest: guest)
    /// A page or token the machine knows, or any other.
    func page() -> UInt64 {
        let pick = input.u8()
        if pick & 0x80 == 0, !state.outstanding.isEmpty {
            return Array(state.outstanding.values)[Int(pick) % state.outstanding.count] | UInt64(pick & 0x70)
        }
        return pick & 0x40 != 0 ? input.u64() : UInt64(input.u16()) << 12
    }
    func token() -> UInt32 {
        let pick = input.u8()
        let known = state.outstanding.keys.sorted() + state.readyQueue + (state.inFlight.map { [$0.token] } ?? [])
        if pick & 0x80 == 0, !known.isEmpty { return known[Int(pick) % known.count] }
        return input.u32()
    }
    while !input.done {
        let op = input.u8()
        do {
            switch op & 0x0f {
            case 0: // WRMSR: an area in RAM (usually) with the low flag bits, a vector, an ack
                let index = msrs[Int(op >> 4) & 3]
                let value = op & 0x80 != 0 ? input.u64() : UInt64(input.u16()) << 6 | UInt64(input.u8() & 0x3f)
                _ = try state.writeMSR(index, value: index == AsyncPFABI.msrInterrupt ? value >> 6 : value, env: guest)
            case 1:
                for index in msrs { _ = state.readMSR(index) }
            case 2:
                guest.inPageMissing = true
                defer { guest.inPageMissing = false }
                _ = try state.pageMissing(page(), env: guest)
            case 3:
                try state.pageReady(token: token(), env: guest)
            case 4:
                do { try state.injectPageFault(address: input.u64(), errorCode: input.u32(), env: guest) } catch is AsyncPFError {}
            case 5:
                try state.injectNMI(env: guest)
            case 6: // an exit: the guest ran and took its event (or not yet), it may have read flags and the token
                if op & 0x40 == 0 { guest.pending = false }
                if let area = state.isEnabled ? state.areaAddress : nil {
                    if op & 0x10 != 0 { guest.memory[area] = 0 }
                    if op & 0x20 != 0 { guest.memory[area + 4] = 0 }
                }
                _ = try state.exit(env: guest)
            case 7: // the CPU's state and how RAM and fetches behave
                let bits = input.u8()
                (guest.cpl, guest.interrupts, guest.paging) = (bits & 2 != 0 ? 3 : 0, bits & 4 != 0, bits & 8 != 0)
                (guest.pending, guest.fetchFails) = (bits & 16 != 0, bits & 32 != 0)
                if bits & 64 != 0 { guest.ramSize = input.u64() }
            case 8: // a hostile guest writes any word, its area's among them
                let at = op & 0x10 != 0 ? (state.areaAddress &+ UInt64(input.u8() % 16) * 4) : input.u64()
                if let at = try? guest.word(at) { guest.memory[at] = input.u32() }
            default: // a snapshot: its own state restores; a blob laid over it is refused or taken whole
                var bytes = blob(state, guest)
                let own: AsyncPFStateBlob
                do { own = try AsyncPFStateBlob(decoding: bytes) } catch { check(false, "the machine's own state is refused: \(error)"); break }
                if op & 0x10 == 0 { state = restored(own.vcpus[0], policy: policy, guest: guest); break }
                if op & 0x20 != 0 { bytes = [] }
                let n = Int(input.u8()), at = Int(input.u8())
                for k in 0..<n { let b = input.u8(); if at + k < bytes.count { bytes[at + k] = b } else { bytes.append(b) } }
                let taken: AsyncPFStateBlob
                do { taken = try AsyncPFStateBlob(decoding: bytes) } catch { requireOneLine("\(error)"); break }
                let back = taken.bytes
                check(back.count == bytes.count, "a blob of \(bytes.count) bytes saved back as \(back.count)")
                let again = try? AsyncPFStateBlob(decoding: back)
                check(again?.bytes == back, "a saved blob does not read back as itself")
                if let first = taken.vcpus.first { state = restored(first, policy: policy, guest: guest) }
            }
        } catch is RAMFault {
        } catch {
            check(false, "unexpected error \(error)")
        }
        if let why = state.saved.problem(vcpu: state.vcpuID) { check(false, "vCPU \(state.vcpuID) reached a state its restore refuses: \(why)") }
    }
    return 0
}
