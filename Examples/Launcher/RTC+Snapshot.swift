/// The RTC in a snapshot (`BuiltInDeviceState.RTCRegisters`, the launcher's device blob):
/// its index, its clock's offset and its CMOS memory, register C holding the flags the
/// guest has not read and whether the output was raised.
extension RTC {
    /// Register C's flags a snapshot keeps (in CMOS byte 0x0c, which holds nothing else):
    /// "update ended", "alarm", "periodic". "IRQ" follows from them and register B; bit 7
    /// keeps whether the output was raised (`BuiltInDeviceState.rtcRaised`).
    static let keptFlags = BuiltInDeviceState.rtcKeptFlags

    /// For a snapshot (vCPUs paused): with the flags the guest has not read yet, so an
    /// alarm that rang just before is not lost with them.
    var state: BuiltInDeviceState.RTCRegisters {
        thread.lock()
        defer { thread.unlock() }
        var saved = ram
        saved[Self.registerC] = flags(at: ticks()) & Self.keptFlags | (raised ? BuiltInDeviceState.rtcRaised : 0)
        return .init(index: index, offset: offset, ram: saved)
    }

    /// Whether the interrupt output is raised (register C not read since): after a
    /// restore, the level whoever passes it on takes without driving it (`HPET.restoreRTCLevel`).
    var outputRaised: Bool { thread.locked { raised } }

    /// A restore's, checked by `BuiltInDeviceState.decode` (before any vCPU runs).
    func restore(_ s: BuiltInDeviceState.RTCRegisters) {
        thread.lock()
        defer { thread.unlock() }
        index = s.index
        offset = max(-Self.maxOffset, min(Self.maxOffset, s.offset))
        if s.ram.count == ram.count { ram = s.ram }
        ram[Self.registerA] &= 0x7f
        // Raised stays raised, and is not raised again: the irqchip's saved state already
        // holds an interrupt not yet delivered, and KVM's I/O APIC keeps no line levels
        // across KVM_SET_IRQCHIP, so a new edge for an interrupt the guest had taken but not
        // yet acknowledged (its handler before reading register C) was a second interrupt.
        // The guest's read of C lowers it. (A snapshot without the bit raises it again.)
        raised = ram[Self.registerC] & BuiltInDeviceState.rtcRaised != 0
            && ram[Self.registerC] & ram[Self.registerB] & Self.keptFlags != 0
        ram[Self.registerC] &= Self.keptFlags
        flagsRead = ticks()
        thread.signal()
    }
}
