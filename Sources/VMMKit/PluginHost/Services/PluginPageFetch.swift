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
        guard address >= gpa, address - gpa + UInt64(length) <= UInt64(buffer.count) else { return false }
        let offset = Int(address - gpa)
        (buffer.baseAddress! + offset).copyMemory(from: source, byteCount: length)
        for i in offset..<(offset + length) { written[i >> 6] |= 1 << UInt64(i & 63) }
        return true
    }

    var complete: Bool { written.allSatisfy { $0 == ~0 } }
}

extension PluginHost {
    /// Asks the memory-fault plugins, in priority order, for the 4 KiB page at `gpa`:
    /// each handler covering it gets a memory_fault record (gpa, size 4096, not
    /// annotated) and makes the page present by writing it with `write_guest`; the bytes
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
        record.memory_fault.gpa = gpa
        record.memory_fault.size = 4096
        record.memory_fault.access = access
        let page = "guest-physical page \(hex(gpa))"
        for h in memoryFaultHandlers where h.covers(gpa) {
            record.message = nil
            let verdict = state.call(h.handle, h.user, &record, h.tag)
            switch verdict {
            case VMM_NOT_MINE.rawValue:
                continue
            case VMM_HANDLED.rawValue:
                guard staging.complete else {
                    throw .invalidArgument("\(h.owner) handled the fault on \(page) but did not write the whole page with write_guest")
                }
                return
            default:
                let message = record.message.map { String(cString: $0) } ?? "(no message)"
                throw .invalidArgument("\(h.owner) failed to deliver \(page): \(message)")
            }
        }
        throw .invalidArgument("no memory-fault plugin delivered \(page)")
    }
}
