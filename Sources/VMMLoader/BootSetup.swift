import VMMKit

extension VCPU {
    /// Enters `entry` the way a boot loader leaves it.
    public func boot(_ entry: BootEntry) throws(VMMError) {
        switch entry {
        case let .longMode(rip, stack, tables):
            try setupLongMode(entry: rip, stack: stack, tables: tables)
        case let .realMode(segment, offset):
            try setupRealMode(segment: segment, offset: offset)
        case let .protected32(rip, eax, ebx, gdt):
            // QEMU's Multiboot and PVH option ROMs jump with the BIOS's stack still in
            // ESP, in low RAM: a kernel that calls before it sets its own works. The
            // loader's window has its stack page below `kernelStackTop`, as Linux's boot.
            let window = gdt &- GuestLayout.gdt
            try setupProtectedMode32(entry: rip, eax: eax, ebx: ebx, gdt: gdt,
                                     stack: UInt32(truncatingIfNeeded: window &+ GuestLayout.kernelStackTop))
        case let .linux64(rip, bootParams, tables):
            try setupLongMode(entry: rip, stack: tables + GuestLayout.kernelStackTop, tables: tables)
            var regs = try registers()
            regs.rsi = bootParams
            try setRegisters(regs)
        }
    }

    /// 32-bit protected mode, flat segments, paging off, as Multiboot specifies; QEMU's
    /// option ROMs' GDT (null, flat 32-bit code 0x08 and data 0x10, 64 KiB 16-bit code
    /// 0x18 and data 0x20) is written at `gdt` for guests that reload their segments, or
    /// go back to real mode, before installing their own. ESP is `stack`.
    public func setupProtectedMode32(entry: UInt32, eax: UInt32, ebx: UInt32, gdt: UInt64 = GuestLayout.gdt,
                                     stack: UInt32 = 0) throws(VMMError) {
        try memory.write(gdt, UInt64(0))
        try memory.write(gdt + 8, UInt64(0x00cf_9b00_0000_ffff))
        try memory.write(gdt + 16, UInt64(0x00cf_9300_0000_ffff))
        try memory.write(gdt + 24, UInt64(0x0000_9e00_0000_ffff))
        try memory.write(gdt + 32, UInt64(0x0000_9200_0000_ffff))
        var sregs = try specialRegisters()
        func flat(_ selector: UInt16, code: Bool) -> Segment {
            var s = Segment()
            s.limit = 0xffff_ffff
            s.selector = selector
            s.type = code ? 11 : 3
            s.present = 1
            s.db = 1
            s.s = 1
            s.g = 1
            return s
        }
        sregs.cs = flat(0x08, code: true)
        let data = flat(0x10, code: false)
        sregs.ds = data; sregs.es = data; sregs.fs = data; sregs.gs = data; sregs.ss = data
        sregs.gdt.base = gdt
        sregs.gdt.limit = 5 * 8 - 1
        sregs.idt.limit = 0
        sregs.cr0 = 0x11 // PE | ET
        sregs.cr4 = 0
        sregs.efer = 0
        try setSpecialRegisters(sregs)
        var regs = Registers()
        regs.rip = UInt64(entry)
        regs.rax = UInt64(eax)
        regs.rbx = UInt64(ebx)
        regs.rsp = UInt64(stack)
        regs.rflags = 0x2
        try setRegisters(regs)
    }
}
