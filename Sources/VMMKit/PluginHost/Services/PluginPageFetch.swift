import CVMMPlugin
import Glibc

/// One page a demand pager asked the memory-fault plugins for: their `write_guest`
/// calls into it are captured here instead of touching guest memory (which is still
/// missing: a plain write would block on, or take SIGBUS from, the very page).
final class PageStaging {
    let gpa: UInt64
    let buffer: UnsafeMutableRawBufferPointer
    /// One bit per byte written, so a page delivered in pieces counts as complete.
    private var written = [UInt64](repeating: 0, count: 64)

    init(gpa: UInt64, buffer: UnsafeMutableRawBufferPointer) {
        self.gpa = gpa
        self.buffer = buffer
    }

    /// Copies a write that lies inside the page; false (untouched) otherwise.
    func take(_ address: UInt64, _ source: UnsafeRawPointer, _ length: Int) -> Bool {
        let size = UInt64(buffer.count)
        guard length >= 0, address >= gpa, address - gpa <= size, UInt64(length) <= size - (address - gpa) else { return false }
        let offset = Int(address - gpa)
        (buffer.baseAddress! + offset).copyMemory(from: source, byteCount: length)
        // A word of the bitmap at a time (a whole page is 64 stores, not 4096).
        written.withUnsafeMutableBufferPointer { w in
            var i = offset
            let end = offset + length
            while i < end {
                let bit = i & 63, n = min(64 - bit, end - i)
                w[i >> 6] |= n == 64 ? ~0 : ((1 << UInt64(n)) - 1) << UInt64(bit)
                i += n
            }
        }
        return true
    }

    var complete: Bool { written.allSatisfy { $0 == ~0 } }

    /// A write that overlaps the page without lying inside it (asked after `take`
    /// refused it): the rest of it would go to guest memory the fetch itself is to fill,
    /// and wait on that fetch for ever.
    func crosses(_ address: UInt64, _ length: Int) -> Bool { overlaps(address, length) }

    /// Whether `length` bytes at `address` touch the page: a read of them would wait on
    /// this very fetch (its guest memory is missing until the fetch ends).
    func overlaps(_ address: UInt64, _ length: Int) -> Bool {
        guard length > 0 else { return false }
        let end = address.addingReportingOverflow(UInt64(length))
        let pageEnd = gpa &+ UInt64(buffer.count)
        return (end.overflow || end.partialValue > gpa) && address < pageEnd
    }
}

extension PluginHost {
    /// Marks the calling thread as the one that delivers demand-paged memory (a fault
    /// router: the only reader of its userfaultfd). A plugin it calls that reads or
    /// writes guest memory `isPresent` says is missing gets -EAGAIN: touching it would
    /// fault on this very thread, which then waits for ever for itself to answer.
    public static func deliversPages(isPresent: @escaping (UInt64, Int) -> Bool) {
        PluginThreadState.current.deliveredRange = isPresent
    }

    /// A demand pager's router stopped (the run is over): nothing will deliver the pages
    /// `isPresent` says are missing, and a plugin reading or writing one (in its destroy,
    /// from its own thread) gets -EAGAIN. It waited for ever, and the VMM's exit with it.
    public func pagerStopped(isPresent: @escaping @Sendable (UInt64, Int) -> Bool) {
        stoppedPager.withLock { $0 = isPresent }
    }

    /// Whether touching [gpa, gpa + length) from `state`'s thread would wait for a page
    /// nobody delivers: on the thread that delivers them (`deliversPages`), or once a
    /// pager stopped (`pagerStopped`).
    func wouldWaitForever(_ gpa: UInt64, _ length: Int, on state: PluginThreadState?) -> Bool {
        if let present = state?.deliveredRange, !present(gpa, length) { return true }
        return stoppedPager.withLock { $0 }.map { !$0(gpa, length) } ?? false
    }

    /// Asks the memory-fault plugins, in priority order, for the 4 KiB page at `gpa`:
    /// each handler covering it gets a memory_fault record (gpa, size 4096, annotated:
    /// the address comes from the kernel) and makes the page present by writing it with `write_guest`; the bytes
    /// land in `buffer`. `vcpuID` names the faulting vCPU (`VMM_VCPU_NONE` if unknown);
    /// when the caller is not that vCPU's thread (a fault router), `get_reg` answers
    /// -EBUSY. Throws, naming the page, when no plugin delivers the whole page.
    public func fetchPage(at gpa: UInt64, into buffer: UnsafeMutableRawBufferPointer, vcpuID: UInt32, access: UInt32 = 0) throws(VMMError) {
        guard buffer.count == 4096 else { throw .invalidArgument("fetchPage: the buffer must be one 4 KiB page, not \(buffer.count) bytes") }
        let state = PluginThreadState.current
        let staging = PageStaging(gpa: gpa, buffer: buffer)
        let outer = state.staging
        state.staging = staging
        defer { state.staging = outer }
        // A private record: the thread's exit record may be in use by the exit that faulted.
        var record = vmm_exit_t()
        record.struct_size = UInt32(MemoryLayout<vmm_exit_t>.size)
        record.vcpu_id = vcpuID
        record.exit_class = VMM_EXIT_MEMORY_FAULT.rawValue
        // Located by the kernel (a userfaultfd message or a fault the pager placed): annotated.
        record.memory_fault = PluginDispatch.memoryFaultRecord(MemoryFault(errno: EFAULT, gpa: gpa, size: 4096), access: access)
        record.memory_fault.err_no = 0 // no KVM_RUN error behind a userfaultfd message
        record.memory_fault_known_flags = MemoryFault.knownFlags
        var page: String { "guest-physical page \(hex(gpa))" } // only for errors: not per fetch
        for h in memoryFaultHandlers where h.covers(gpa) {
            record.message = nil
            let verdict = state.call(h.handle, h.user, &record, h.tag)
            switch verdict {
            case VMM_NOT_MINE.rawValue:
                continue
            case VMM_HANDLED.rawValue, VMM_BACKING_REPLACED:
                guard staging.complete else {
                    throw .invalidArgument("\(h.owner) handled the fault on \(page) but did not write the whole page with write_guest")
                }
                return
            default:
                let message = PluginText.message(record.message)
                throw .invalidArgument("\(h.owner) failed to deliver \(page): \(message)")
            }
        }
        throw .invalidArgument("no memory-fault plugin delivered \(page)")
    }
}

extension PluginHost {
    /// The guest-physical ranges some memory-fault plugin fills with more than zeros
    /// (handlers without VMM_HANDLER_ZERO_FILL), sorted and merged; a whole-space handler
    /// gives `0..<UInt64.max`. Empty when every memory-fault handler only zero-fills, or
    /// there is none. A VMM demand-pages just these ranges: elsewhere the kernel's own
    /// demand-zero memory gives what a zero-fill plugin would, without a round trip to
    /// user space per page (`DemandPager(memory:region:source:mode:only:)`).
    /// Whether every memory-fault handler declared VMM_HANDLER_ANY_THREAD, so
    /// `fetchPage` may run on a fault router for a vCPU still inside `KVM_RUN`.
    public var memoryFaultHandlersRunOnAnyThread: Bool {
        !memoryFaultHandlers.isEmpty && memoryFaultHandlers.allSatisfy(\.anyThread)
    }

    public var pageSourceRanges: [Range<UInt64>] {
        let ranges = memoryFaultHandlers.filter { !$0.zeroFill }.map { h -> Range<UInt64> in
            // Whole space, or a range whose end wrapped past 2^64: up to the top.
            h.start == h.end || h.end < h.start ? h.start..<UInt64.max : h.start..<h.end
        }.sorted { $0.lowerBound < $1.lowerBound }
        var merged: [Range<UInt64>] = []
        for r in ranges {
            if let last = merged.last, r.lowerBound <= last.upperBound {
                merged[merged.count - 1] = last.lowerBound..<max(last.upperBound, r.upperBound)
            } else {
                merged.append(r)
            }
        }
        return merged
    }
}
