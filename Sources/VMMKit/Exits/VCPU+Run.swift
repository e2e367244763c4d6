import CKVM
import Glibc
import SystemPackage

extension VCPU {
    /// One `KVM_RUN`: enters the guest and returns why it left, decoded into a value.
    ///
    /// The canary runs around the entry: when the previous exit needs no completion the
    /// exit record is poisoned first, and afterwards `ExitCanary.classify` decides from
    /// (rc, errno, bytes) whether the record is fresh. -1 EFAULT/EHWPOISON is
    /// `.memoryFault` (annotated only with a fresh `KVM_EXIT_MEMORY_FAULT`), EINTR/EAGAIN
    /// `.interrupted`; any other errno throws and `exit_reason` is not read; a record
    /// that cannot be trusted throws `.exitAnomaly` with a diagnosis and is never decoded.
    /// Complete the previous exit with `complete(_:)` before calling this again.
    /// After the VM's `close()` it throws `.closed`.
    public func run() throws(VMMError) -> VMExit {
        let entry = poisonForEntry()
        let (rc, err) = entryRef._withUnsafeGuaranteedRef { $0.enter() }
        return try classified(rc: rc, err: err, entry: entry)
    }

    /// The canary's half before an entry: poison the record if nothing is pending.
    @inline(__always)
    func poisonForEntry() -> ExitCanary.Entry {
        if canary.mayPoison {
            ExitCanary.poison(UnsafeMutableRawPointer(runPage))
            return ExitCanary.Entry(poisoned: true, reasonBefore: ExitCanary.poisonReason)
        }
        return ExitCanary.Entry(poisoned: false, reasonBefore: runPage.pointee.exit_reason)
    }

    /// The canary's half after an entry, then decoding: what `run()` returns.
    func classified(rc: Int32, err: Int32, entry: ExitCanary.Entry) throws(VMMError) -> VMExit {
        let raw = UnsafeMutableRawPointer(runPage)
        switch ExitCanary.classify(rc: rc, errno: err, run: raw, size: runSize, entry: entry) {
        case let .exit(reason):
            canary.mayPoison = !ExitCanary.needsCompletion(reason: reason)
            let exit = decodeExit()
            canary.record(summary(of: exit, reason: reason))
            return exit
        case .interrupted:
            // The pending completion (if any) may not have been consumed: keep mayPoison.
            canary.record(ExitSummary(rc: rc, errno: err, reason: runPage.pointee.exit_reason, outcome: .interrupted))
            canary.carryFaultRun()
            if err == EAGAIN, canary.countAgain() >= VCPUCanary.againLimit {
                throw .ioctlFailed(name: "KVM_RUN (EAGAIN \(VCPUCanary.againLimit) times in a row, the guest never entered: "
                                   + "is a pids cgroup or RLIMIT_NPROC refusing KVM's per-VM worker task?)",
                                   errno: Errno(rawValue: EAGAIN))
            }
            return .interrupted
        case let .annotatedFault(errno):
            canary.mayPoison = true
            let mf = ckvm_run_memory_fault(runPage)!.pointee
            canary.record(ExitSummary(rc: rc, errno: errno, reason: runPage.pointee.exit_reason, address: mf.gpa,
                                      length: UInt32(truncatingIfNeeded: mf.size), outcome: .annotatedFault))
            return .memoryFault(MemoryFault(errno: errno, gpa: mf.gpa, size: mf.size, flags: mf.flags))
        case let .unannotatedFault(errno):
            canary.mayPoison = true
            canary.record(ExitSummary(rc: rc, errno: errno, reason: runPage.pointee.exit_reason, outcome: .unannotatedFault))
            return .memoryFault(.unannotated(errno: errno))
        case let .error(errno):
            canary.record(ExitSummary(rc: rc, errno: errno, outcome: .error))
            throw backend.entryError(errno: errno, vcpu: id)
        case let .anomaly(kind):
            canary.mayPoison = true
            canary.record(ExitSummary(rc: rc, errno: err, reason: runPage.pointee.exit_reason, outcome: .anomaly))
            throw .exitAnomaly(ExitAnomaly(kind: kind, vcpu: id, rip: try? registers().rip, rc: rc, errno: err,
                                           recentExits: canary.recentExits))
        }
    }

    @inline(__always)
    private func summary(of exit: VMExit, reason: UInt32) -> ExitSummary {
        switch exit {
        case let .io(a):
            ExitSummary(reason: reason, address: UInt64(a.port), length: UInt32(a.data.count), isWrite: a.isWrite)
        case let .mmio(a):
            ExitSummary(reason: reason, address: a.address, length: UInt32(a.length), isWrite: a.isWrite)
        default:
            ExitSummary(reason: reason)
        }
    }

    /// Copies the exit out of `kvm_run`. Hot path: no allocation for I/O and MMIO.
    func decodeExit() -> VMExit {
        let reason = runPage.pointee.exit_reason
        switch Int32(bitPattern: reason) {
        case KVM_EXIT_IO:
            let io = runPage.pointee.io
            let bytes = Int(io.size) * Int(io.count)
            let offset = Int(io.data_offset)
            guard io.size == 1 || io.size == 2 || io.size == 4, bytes > 0, offset >= 0, offset + bytes <= runSize else {
                return .unknown(reason: reason)
            }
            let isWrite = io.direction == UInt8(KVM_EXIT_IO_OUT)
            // An IN's data starts zeroed (see hotPIO).
            if isWrite { memcpy(scratch, UnsafeRawPointer(runPage) + offset, bytes) } else { memset(scratch, 0, bytes) }
            return .io(PIOAccess(port: io.port, size: Int(io.size), count: Int(io.count), isWrite: isWrite,
                                 data: UnsafeMutableRawBufferPointer(start: scratch, count: bytes)))
        case KVM_EXIT_MMIO:
            let mmio = runPage.pointee.mmio
            let length = Int(mmio.len)
            var value: UInt64 = 0
            if mmio.is_write != 0 {
                withUnsafeBytes(of: mmio.data) { src in
                    withUnsafeMutableBytes(of: &value) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[0..<min(length, 8)])) }
                }
            }
            return .mmio(MMIOAccess(address: mmio.phys_addr, length: length, isWrite: mmio.is_write != 0,
                                    data: UInt64(littleEndian: value)))
        case KVM_EXIT_HLT:
            return .hlt
        case KVM_EXIT_SHUTDOWN:
            return .shutdown
        case KVM_EXIT_DEBUG:
            let a = runPage.pointee.debug.arch
            return .debug(DebugExit(exception: a.exception, pc: a.pc, dr6: a.dr6, dr7: a.dr7))
        case KVM_EXIT_HYPERCALL:
            let h = runPage.pointee.hypercall
            return .hypercall(Hypercall(number: h.nr, args: h.args))
        case KVM_EXIT_X86_RDMSR, KVM_EXIT_X86_WRMSR:
            let m = runPage.pointee.msr
            let access = MSRAccess(index: m.index, reason: m.reason, data: m.data)
            return Int32(reason) == KVM_EXIT_X86_RDMSR ? .rdmsr(access) : .wrmsr(access)
        case KVM_EXIT_INTERNAL_ERROR:
            return .internalError(decodeInternalError())
        case KVM_EXIT_FAIL_ENTRY:
            let f = runPage.pointee.fail_entry
            return .failEntry(hardwareReason: f.hardware_entry_failure_reason, cpu: f.cpu)
        case KVM_EXIT_SYSTEM_EVENT:
            let e = runPage.pointee.system_event
            let n = min(Int(e.ndata), 16)
            let data = withUnsafeBytes(of: e.data) { Array($0.bindMemory(to: UInt64.self).prefix(n)) }
            return .systemEvent(type: e.type, data: data)
        case KVM_EXIT_IRQ_WINDOW_OPEN:
            return .irqWindowOpen
        case KVM_EXIT_INTR:
            return .interrupted
        default:
            return .unknown(reason: reason)
        }
    }

    private func decodeInternalError() -> InternalError {
        let internalData = runPage.pointee.internal
        let n = min(Int(internalData.ndata), 16)
        let data = withUnsafeBytes(of: internalData.data) { Array($0.bindMemory(to: UInt64.self).prefix(n)) }
        var bytes: [UInt8] = []
        let failure = runPage.pointee.emulation_failure
        if internalData.suberror == UInt32(KVM_INTERNAL_ERROR_EMULATION), failure.ndata >= 2,
           failure.flags & UInt64(KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES) != 0 {
            let size = min(Int(failure.insn_size), 15)
            bytes = withUnsafeBytes(of: failure.insn_bytes) { Array($0.prefix(size)) }
        }
        return InternalError(suberror: internalData.suberror, data: data, instructionBytes: bytes)
    }

    /// Writes a handler's answer back into `kvm_run` so the next `KVM_RUN` hands it to
    /// the guest: IN data, MMIO-read data, RDMSR value or #GP, hypercall return.
    /// After the VM's `close()` it writes into a page no entry reads: harmless.
    public func complete(_ exit: VMExit) {
        switch exit {
        case let .io(access) where !access.isWrite:
            let offset = Int(runPage.pointee.io.data_offset)
            memcpy(UnsafeMutableRawPointer(runPage) + offset, access.data.baseAddress!, access.data.count)
        case let .mmio(access) where !access.isWrite:
            withUnsafeMutableBytes(of: &runPage.pointee.mmio.data) { dst in
                withUnsafeBytes(of: access.data.littleEndian) { src in
                    dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[0..<min(access.length, 8)]))
                }
            }
        case let .rdmsr(access):
            runPage.pointee.msr.data = access.data
            runPage.pointee.msr.error = access.error ? 1 : 0
        case let .wrmsr(access):
            runPage.pointee.msr.error = access.error ? 1 : 0
        case let .hypercall(call):
            runPage.pointee.hypercall.ret = call.returnValue
        default:
            break
        }
    }
}
