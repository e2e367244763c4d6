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
            try setupProtectedMode32(entry: rip, eax: eax, ebx: ebx, gdt: gdt)
        case let .linux64(rip, bootParams, tables):
            try setupLongMode(entry: rip, stack: tables + GuestLayout.kernelStackTop, tables: tables)
            var regs = try registers()
            regs.rsi = bootParams
            try setRegisters(regs)
        }
    }

    /// 32-bit protected mode, flat segments, paging off, as Multiboot specifies; a flat
    /// GDT (null, code 0x08, data 0x10) is written at `gdt` for guests that reload their
    /// segments before installing their own.
    public func setupProtectedMode32(entry: UInt32, eax: UInt32, ebx: UInt32, gdt: UInt64 = GuestLayout.gdt) throws(VMMError) {
        try memory.write(gdt, UInt64(0))
        try memory.write(gdt + 8, UInt64(0x00cf_9b00_0000_ffff))
        try memory.write(gdt + 16, UInt64(0x00cf_9300_0000_ffff))
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
        sregs.gdt.limit = 23
        sregs.idt.limit = 0
        sregs.cr0 = 0x11 // PE | ET
        sregs.cr4 = 0
        sregs.efer = 0
        try setSpecialRegisters(sregs)
        var regs = Registers()
        regs.rip = UInt64(entry)
        regs.rax = UInt64(eax)
        regs.rbx = UInt64(ebx)
        regs.rflags = 0x2
        try setRegisters(regs)
    }
}
