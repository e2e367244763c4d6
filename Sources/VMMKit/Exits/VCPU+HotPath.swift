import CKVM
import Glibc

/// What one entry through the hot path produced. Payloads go through `inout`
/// parameters: a result enum carrying a `VMExit` would be copied with `memcpy` at
/// every hand-over.
enum HotStep {
    /// A PIO or MMIO exit a range handler handled; already completed.
    case handled
    /// A PIO or MMIO exit (`exit`) a range handler answered with `.stop` or `.fail` (`verdict`).
    case ranged
    /// A PIO or MMIO exit (`exit`) no range handler claimed: kind handlers, then the default.
    case unclaimed
    /// A HLT (`exit` not written): `FrozenTables.dispatchHalt`. Nothing to complete.
    case halted
    /// Any other exit, kick or memory fault (`exit`): the loop's general path.
    case other
    /// The entry failed (`failure`): the run ends with that error.
    case failed
}

extension VCPU {
    /// One entry for the run loop when no `ExitObserver` is set, with PIO and MMIO exits
    /// — the ones a device model lives on — decoded straight into their access values,
    /// dispatched through the frozen range tables and completed without a `VMExit`
    /// being built, copied and destroyed; a HLT goes straight to its kind handlers. The
    /// canary is the same as `run()`'s: poison
    /// before the entry when nothing is pending, `ExitCanary.classify` after it, the
    /// history entry and the poison decision; only a record the canary passes as a
    /// plausible IO/MMIO exit takes this path, anything else goes through `run()`'s
    /// `classified` (so anomalies, faults, errors and kicks are handled as before).
    @inline(__always)
    func runHot<E: GuestEntry>(_ tables: Unmanaged<FrozenTables>, _ guest: E, _ exit: inout VMExit,
                               _ verdict: inout ExitVerdict, _ failure: inout VMMError?) -> HotStep {
        let entry = poisonForEntry()
        let rc = guest.enter()
        if rc == 0 {
            let raw = UnsafeMutableRawPointer(runPage)
            let reason = runPage.pointee.exit_reason
            // For rc 0 and an IO or MMIO reason (never the poison), `ExitCanary.classify`
            // answers `.exit` exactly when these checks pass; anything else, including its
            // anomalies, is left to `classified`, which runs classify itself.
            if reason == UInt32(KVM_EXIT_IO) {
                if ExitCanary.plausibleIO(raw, pageBytes: runBytes) {
                    // IO and MMIO answers are read back by the kernel: no poison next time.
                    canary.mayPoison = false
                    return hotPIO(tables, raw, &exit, &verdict)
                }
            } else if reason == UInt32(KVM_EXIT_MMIO) {
                if ExitCanary.plausibleMMIO(raw) {
                    canary.mayPoison = false
                    return hotMMIO(tables, &exit, &verdict)
                }
            } else if reason == UInt32(KVM_EXIT_HLT) {
                // classify's verdict for rc 0 and a reason that is neither the poison nor
                // IO/MMIO/memory fault is always `.exit`; HLT leaves nothing to complete.
                canary.mayPoison = true
                canary.record(ExitSummary(reason: reason))
                return .halted
            }
        }
        return coldStep(rc, entry, &exit, &failure)
    }

    /// Everything but a plausible PIO, MMIO or HLT exit: `run()`'s own classification,
    /// out of line so that its anomaly messages and `VMExit` temporaries stay out of
    /// the hot path's frame.
    ///
    /// It does not throw: a throwing hot path kept Swift's error register live across
    /// the whole loop, 4 register moves an exit (callgrind).
    /// errno is the entry's (`GuestEntry`): nothing since it touched errno.
    @inline(never)
    private func coldStep(_ rc: Int32, _ entry: ExitCanary.Entry, _ exit: inout VMExit,
                          _ failure: inout VMMError?) -> HotStep {
        let err = rc < 0 ? ckvm_errno() : 0
        do {
            exit = try classified(rc: rc, err: err, entry: entry)
            return .other
        } catch {
            failure = error
            return .failed
        }
    }

    /// The classifier has checked element size, count and that the data lies in the page.
    @inline(never)
    private func hotPIO(_ tables: Unmanaged<FrozenTables>, _ raw: UnsafeMutableRawPointer,
                        _ exit: inout VMExit, _ verdict: inout ExitVerdict) -> HotStep {
        let io = runPage.pointee.io
        let bytes = Int(io.size) &* Int(io.count)
        let offset = Int(truncatingIfNeeded: io.data_offset) // at most the page size (plausibleIO)
        let isWrite = io.direction == UInt8(KVM_EXIT_IO_OUT)
        // An IN's data starts zeroed: whatever a handler leaves unwritten (elements of a
        // `rep ins` after the first, say) reaches the guest, and was the buffer's last
        // contents (host heap, earlier I/O).
        if isWrite { Self.copySmall(to: scratch, from: raw + offset, bytes) } else { Self.zeroSmall(scratch, bytes) }
        var access = PIOAccess(port: io.port, size: Int(io.size), count: Int(io.count), isWrite: isWrite,
                               data: UnsafeMutableRawBufferPointer(start: scratch, count: bytes))
        canary.record(ExitSummary(reason: UInt32(KVM_EXIT_IO), address: UInt64(io.port), length: UInt32(bytes),
                                  isWrite: isWrite))
        switch FrozenTables.dispatchHot(tables._withUnsafeGuaranteedRef { $0.pio }, &access, self, &verdict) {
        case .handled: break
        case .unclaimed: exit = .io(access); return .unclaimed
        case .other: exit = .io(access); return .ranged
        }
        if !isWrite { Self.copySmall(to: raw + offset, from: scratch, bytes) }
        return .handled
    }

    /// A PIO element is 1, 2 or 4 bytes and almost always alone: one load and store
    /// instead of a call into libc's memcpy (~30 instructions for one byte).
    @inline(__always)
    private static func copySmall(to dst: UnsafeMutableRawPointer, from src: UnsafeRawPointer, _ bytes: Int) {
        switch bytes {
        case 1: dst.storeBytes(of: src.load(as: UInt8.self), as: UInt8.self)
        case 2: dst.storeBytes(of: src.loadUnaligned(as: UInt16.self), as: UInt16.self)
        case 4: dst.storeBytes(of: src.loadUnaligned(as: UInt32.self), as: UInt32.self)
        default: memcpy(dst, src, bytes)
        }
    }

    @inline(__always)
    private static func zeroSmall(_ dst: UnsafeMutableRawPointer, _ bytes: Int) {
        switch bytes {
        case 1: dst.storeBytes(of: 0, as: UInt8.self)
        case 2: dst.storeBytes(of: 0, as: UInt16.self)
        case 4: dst.storeBytes(of: 0, as: UInt32.self)
        default: memset(dst, 0, bytes)
        }
    }

    /// The classifier has checked the length (1 to 8 bytes).
    @inline(never)
    private func hotMMIO(_ tables: Unmanaged<FrozenTables>, _ exit: inout VMExit, _ verdict: inout ExitVerdict) -> HotStep {
        let mmio = runPage.pointee.mmio
        let length = Int(mmio.len)
        let isWrite = mmio.is_write != 0
        var data: UInt64 = 0
        if isWrite {
            // 1 to 8 bytes (plausibleMMIO): a shift of 0 to 56, no special case for 8.
            let mask = ~UInt64(0) &>> UInt64(truncatingIfNeeded: 64 &- length &* 8)
            data = UInt64(littleEndian: withUnsafeBytes(of: mmio.data) { $0.loadUnaligned(as: UInt64.self) }) & mask
        }
        var access = MMIOAccess(address: mmio.phys_addr, length: length, isWrite: isWrite, data: data)
        canary.record(ExitSummary(reason: UInt32(KVM_EXIT_MMIO), address: mmio.phys_addr, length: UInt32(length),
                                  isWrite: isWrite))
        switch FrozenTables.dispatchHot(tables._withUnsafeGuaranteedRef { $0.mmio }, &access, self, &verdict) {
        case .handled: break
        case .unclaimed: exit = .mmio(access); return .unclaimed
        case .other: exit = .mmio(access); return .ranged
        }
        if !isWrite {
            // kvm_run.mmio.data (8 bytes, after phys_addr) in one store, whatever the
            // length: the kernel hands the guest only the first `len` bytes of it.
            let dst = UnsafeMutableRawPointer(runPage) + (ExitCanary.unionOffset &+ 8)
            dst.storeBytes(of: access.data.littleEndian, as: UInt64.self)
        }
        return .handled
    }
}
