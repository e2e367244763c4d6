import CKVM

extension VirtualMachine {
    /// The interrupt controllers and timer as SeaBIOS leaves them when QEMU's option ROM
    /// enters a `-kernel` (Multiboot, PVH, Linux): KVM creates them as at power-on, with
    /// the PICs uninitialised (vectors from 0, nothing masked) and the PIT idle, where a
    /// kernel booted by QEMU finds what SeaBIOS's POST did:
    ///
    /// - PIT channel 0 counting in mode 2 (rate generator), 16-bit binary, count 0 (65536):
    ///   IRQ 0 at 18.2 Hz (`pit_setup`). A kernel that counts ticks without programming
    ///   the PIT gets them, as under QEMU.
    /// - The PICs initialised with ICW4 (8086 mode), master vectors 0x08-0x0f, slave
    ///   0x70-0x77 (`pic_reset`), and unmasked only the lines SeaBIOS's POST enables:
    ///   IRQ 0 and 8 (clock), 1 and 12 (PS/2), 2 (the cascade), 6 (floppy), 13 (the
    ///   FPU) and 14 (ATA): IMR 0xb8 and 0x8e. A kernel that enables interrupts without
    ///   remapping or masking the PICs takes IRQ 0 on vector 8 here as it does under QEMU
    ///   (QEMU test kernels mask them first).
    ///
    /// Needs `createIRQChip()` and `createPIT()`; call it before the first vCPU runs.
    public func applySeaBIOSInterruptState() throws(VMMError) {
        var pit = kvm_pit_state2()
        _ = try vmIOCTL(CKVM_GET_PIT2, "KVM_GET_PIT2", &pit)
        pit.channels.0.mode = 2
        pit.channels.0.rw_mode = 3 // low byte, then high byte
        pit.channels.0.read_state = 3
        pit.channels.0.write_state = 3
        pit.channels.0.bcd = 0
        pit.channels.0.gate = 1
        pit.channels.0.count = 0 // KVM, as the 8254, counts 0 as 65536
        _ = try vmIOCTL(CKVM_SET_PIT2, "KVM_SET_PIT2", &pit)
        for (id, base, mask) in [(UInt32(0), UInt8(0x08), UInt8(0xb8)), (1, 0x70, 0x8e)] {
            var chip = kvm_irqchip()
            chip.chip_id = id
            _ = try vmIOCTL(CKVM_GET_IRQCHIP, "KVM_GET_IRQCHIP", &chip)
            chip.chip.pic.irq_base = base
            chip.chip.pic.imr = mask
            chip.chip.pic.init4 = 1
            chip.chip.pic.init_state = 0
            _ = try vmIOCTL(CKVM_SET_IRQCHIP, "KVM_SET_IRQCHIP", &chip)
        }
    }
}
