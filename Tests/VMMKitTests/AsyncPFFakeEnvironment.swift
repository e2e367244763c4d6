@testable import VMMKit

/// A recording fake of `AsyncPFEnvironment`: the vCPU state the state machine queries
/// is plain properties, and every effect is appended to `events`. It also models the
/// part of the CPU the race is about: an injected #PF becomes "taken" (CR2 := payload)
/// only when the test says the guest entered, so a clobbered CR2 is visible.
///
/// A recording fake of the protocol rather than the scripted vCPU backend: that one
/// replays exits, while these rules are about vCPU state and injections (CPL, IF,
/// pending events, CR2), which it does not model. The KVM side of each rule is covered
/// by AsyncPFPlumbingTests and AsyncPFEndToEndTests on real KVM.
final class FakeAsyncPFEnvironment: AsyncPFEnvironment {
    enum Event: Equatable {
        case pageFault(address: UInt64, errorCode: UInt32)
        case interrupt(UInt8)
        case nmi
        case halt
        case wake
        case fetch(UInt64)
    }

    var cpl = 3
    var interruptFlag = true
    var paging = true
    /// Events injected but not yet taken by the "guest".
    var pendingEvents: [Event] = []
    var otherEventPending = false
    var events: [Event] = []
    var cr2: UInt64 = 0
    /// Guest RAM the fake knows: [ramStart, ramEnd).
    let ramStart: UInt64 = 0
    let ramEnd: UInt64 = 0x10_0000
    var memory: [UInt64: UInt32] = [:]

    func currentPrivilegeLevel() throws(VMMError) -> Int { cpl }
    func interruptsEnabled() throws(VMMError) -> Bool { interruptFlag }
    func pagingEnabled() throws(VMMError) -> Bool { paging }
    func eventPending() throws(VMMError) -> Bool { otherEventPending || !pendingEvents.isEmpty }

    func readGuest32(_ gpa: UInt64) throws(VMMError) -> UInt32 {
        guard gpa >= ramStart, gpa <= ramEnd - 4 else { throw .unmappedGuestAddress(gpa: gpa, length: 4) }
        return memory[gpa] ?? 0
    }

    func writeGuest32(_ gpa: UInt64, _ value: UInt32) throws(VMMError) {
        guard gpa >= ramStart, gpa <= ramEnd - 4 else { throw .unmappedGuestAddress(gpa: gpa, length: 4) }
        memory[gpa] = value
    }

    func injectPageFault(address: UInt64, errorCode: UInt32) throws(VMMError) {
        record(.pageFault(address: address, errorCode: errorCode))
    }
    func injectInterrupt(vector: UInt8) throws(VMMError) { record(.interrupt(vector)) }
    func injectNMI() throws(VMMError) { record(.nmi) }
    func halt() throws(VMMError) { events.append(.halt) }
    func wake() throws(VMMError) { events.append(.wake) }
    func fetchPageSynchronously(_ gpa: UInt64) throws(VMMError) { events.append(.fetch(gpa)) }

    private func record(_ event: Event) {
        events.append(event)
        pendingEvents.append(event)
    }

    /// The guest enters and takes every pending event: a #PF loads CR2 from its payload.
    func enterGuest() {
        for case let .pageFault(address, _) in pendingEvents { cr2 = address }
        pendingEvents.removeAll()
    }
}
