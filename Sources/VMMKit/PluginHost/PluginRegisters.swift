import CKVM
import CVMMPlugin
import Glibc

/// get_reg / set_reg on the cached registers of the vCPU in an exit on this thread
/// (`PluginThreadState`): one KVM_GET_REGS/SREGS per exit at most, written back once
/// when the handler returns.
enum PluginRegisters {
    static func get(_ state: PluginThreadState, _ reg: vmm_reg_t, _ out: UnsafeMutablePointer<UInt64>) -> Int32 {
        do {
            if reg <= VMM_REG_RFLAGS.rawValue {
                try state.loadRegs()
                guard let value = withGeneral(&state.regs, reg, { $0.pointee }) else { return -EINVAL }
                PluginPointer.store(value, at: out)
                return 0
            }
            try state.loadSregs()
            let s = state.sregs
            switch reg {
            case VMM_REG_CR0.rawValue: PluginPointer.store(s.cr0, at: out)
            case VMM_REG_CR2.rawValue: PluginPointer.store(s.cr2, at: out)
            case VMM_REG_CR3.rawValue: PluginPointer.store(s.cr3, at: out)
            case VMM_REG_CR4.rawValue: PluginPointer.store(s.cr4, at: out)
            case VMM_REG_EFER.rawValue: PluginPointer.store(s.efer, at: out)
            case VMM_REG_CPL.rawValue: PluginPointer.store(UInt64(s.ss.dpl), at: out) // KVM's CPL is SS.DPL
            default: return -EINVAL
            }
            return 0
        } catch {
            return -EIO
        }
    }

    static func set(_ state: PluginThreadState, _ reg: vmm_reg_t, _ value: UInt64) -> Int32 {
        do {
            if reg <= VMM_REG_RFLAGS.rawValue {
                try state.loadRegs()
                guard withGeneral(&state.regs, reg, { $0.pointee = value }) != nil else { return -EINVAL }
                state.regsDirty = true
                return 0
            }
            if reg == VMM_REG_CPL.rawValue { return -EPERM }
            try state.loadSregs()
            switch reg {
            case VMM_REG_CR0.rawValue: state.sregs.cr0 = value
            case VMM_REG_CR2.rawValue: state.sregs.cr2 = value
            case VMM_REG_CR3.rawValue: state.sregs.cr3 = value
            case VMM_REG_CR4.rawValue: state.sregs.cr4 = value
            case VMM_REG_EFER.rawValue: state.sregs.efer = value
            default: return -EINVAL
            }
            state.sregsDirty = true
            return 0
        } catch {
            return -EIO
        }
    }

    /// Applies `body` to general register `reg` (x86 encoding order, then RIP, RFLAGS).
    private static func withGeneral<R>(_ r: inout kvm_regs, _ reg: vmm_reg_t,
                                       _ body: (UnsafeMutablePointer<UInt64>) -> R) -> R? {
        switch reg {
        case 0: return body(&r.rax)
        case 1: return body(&r.rcx)
        case 2: return body(&r.rdx)
        case 3: return body(&r.rbx)
        case 4: return body(&r.rsp)
        case 5: return body(&r.rbp)
        case 6: return body(&r.rsi)
        case 7: return body(&r.rdi)
        case 8: return body(&r.r8)
        case 9: return body(&r.r9)
        case 10: return body(&r.r10)
        case 11: return body(&r.r11)
        case 12: return body(&r.r12)
        case 13: return body(&r.r13)
        case 14: return body(&r.r14)
        case 15: return body(&r.r15)
        case 16: return body(&r.rip)
        case 17: return body(&r.rflags)
        default: return nil
        }
    }
}

/// Exception and interrupt injection for plugins, on the vCPU's own thread.
enum PluginInjection {
    static func exception(vm: VirtualMachine, vcpu: VCPU, vector: UInt32, errorCode: UInt32?, payload: UInt64?) -> Int32 {
        guard vector < 32 else { return -EINVAL }
        do {
            if payload != nil {
                guard vm.kvm.hasExtension(KVM_CAP_EXCEPTION_PAYLOAD) else { return -ENOTSUP }
                // Idempotent; with it KVM delivers CR2/DR6 from the payload at injection.
                try vm.enableCapability(UInt32(KVM_CAP_EXCEPTION_PAYLOAD), args: [1])
            }
            var events = try vcpu.events()
            guard events.exception.pending == 0, events.exception.injected == 0 else { return -EBUSY }
            events.exception.nr = UInt8(vector)
            events.exception.has_error_code = errorCode == nil ? 0 : 1
            events.exception.error_code = errorCode ?? 0
            if let payload {
                events.exception.pending = 1
                events.exception_has_payload = 1
                events.exception_payload = payload
                events.flags = UInt32(KVM_VCPUEVENT_VALID_PAYLOAD)
            } else {
                events.exception.injected = 1
                events.flags = 0
            }
            try vcpu.setEvents(events)
            return 0
        } catch {
            return -EIO
        }
    }

    static func interrupt(vm: VirtualMachine, vcpu: VCPU, vector: UInt32) -> Int32 {
        guard (32...255).contains(vector) else { return -EINVAL }
        if vm.hasIRQChip {
            // The in-kernel LAPIC queues it and delivers when the guest can take it.
            do { try vm.signalMSI(apicID: vcpu.id, vector: UInt8(vector)) } catch { return -EIO }
            return 0
        }
        // Not beside a queued exception or NMI either (e.g. a #PF just injected): the
        // window opens once the guest can take the interrupt (its handler's iret).
        let busy: Bool
        do {
            let e = try vcpu.events()
            busy = e.exception.injected != 0 || e.exception.pending != 0 || e.nmi.injected != 0 || e.nmi.pending != 0
        } catch { return -EIO }
        guard vcpu.readyForInterruptInjection, !busy else {
            vcpu.requestInterruptWindow = true
            return -EAGAIN
        }
        do { try vcpu.interrupt(vector: vector) } catch { return -EIO }
        vcpu.requestInterruptWindow = false
        return 0
    }
}
