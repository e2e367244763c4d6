/// What the async page fault state machine needs from one vCPU, and nothing more.
///
/// The state machine (`AsyncPFVCPUState`) makes every decision; an environment only
/// reports vCPU state and carries out injections. `KVMAsyncPFEnvironment` implements it
/// on a real vCPU; tests implement it with a recording fake, so each rule of the
/// protocol can be driven into the corner where it matters.
///
/// All calls happen on the vCPU's own thread while it is out of `KVM_RUN`.
public protocol AsyncPFEnvironment: AnyObject {
    /// The current privilege level (0-3).
    func currentPrivilegeLevel() throws(VMMError) -> Int
    /// RFLAGS.IF.
    func interruptsEnabled() throws(VMMError) -> Bool
    /// CR0.PG.
    func pagingEnabled() throws(VMMError) -> Bool
    /// An exception, interrupt or NMI is already queued for the next entry: injecting
    /// another event now would merge with it (e.g. into #DF) or replace it.
    func eventPending() throws(VMMError) -> Bool

    /// Reads/writes a 32-bit word of guest-physical memory (the 64-byte area).
    func readGuest32(_ gpa: UInt64) throws(VMMError) -> UInt32
    func writeGuest32(_ gpa: UInt64, _ value: UInt32) throws(VMMError)

    /// Queues #PF for the next entry with CR2 = `address` (as an exception payload, so
    /// CR2 changes only when the guest actually takes the fault) and `errorCode`.
    func injectPageFault(address: UInt64, errorCode: UInt32) throws(VMMError)
    /// Queues external interrupt `vector` (waiting for an interrupt window if needed).
    func injectInterrupt(vector: UInt8) throws(VMMError)
    func injectNMI() throws(VMMError)

    /// Keeps the vCPU out of the guest until `wake()`: it faulted on a page that is
    /// already being fetched for it.
    func halt() throws(VMMError)
    func wake() throws(VMMError)

    /// Brings the page containing `gpa` in before returning (the vCPU stalls meanwhile).
    func fetchPageSynchronously(_ gpa: UInt64) throws(VMMError)
}
