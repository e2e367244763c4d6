import CKVM

/// Where the long-mode helper puts its tables in guest RAM (the first 64 KiB, which
/// must therefore be RAM and free for it). Guest code usually starts at `codeStart`.
/// Every address is an offset from the table window's base (0 unless a loader moved
/// the window away from an image: `writeLongModeTables(base:)`, `setupLongMode(tables:)`).
public enum GuestLayout {
    public static let gdt: UInt64 = 0x1000
    public static let pml4: UInt64 = 0x2000
    public static let pdpt: UInt64 = 0x3000
    /// Four page directories: identity map of the first 4 GiB with 2 MiB pages.
    public static let pageDirectories: UInt64 = 0x4000
    /// A 64-bit TSS with an all-zero I/O bitmap (ring 3 with IOPL 3 still consults it here).
    public static let tss: UInt64 = 0x8000
    public static let tssLimit: UInt32 = 0x2068
    /// Free for a guest IDT (256 gates of 16 bytes).
    public static let idt: UInt64 = 0xb000
    /// Default ring-0 stack top (interrupts from ring 3 land here, via TSS.RSP0).
    public static let kernelStackTop: UInt64 = 0xf000
    public static let codeStart: UInt64 = 0x10000

    public static let kernelCodeSelector: UInt16 = 0x08
    public static let kernelDataSelector: UInt16 = 0x10
    public static let userDataSelector: UInt16 = 0x1b
    public static let userCodeSelector: UInt16 = 0x23
    public static let tssSelector: UInt16 = 0x28
}

extension GuestMemory {
    /// Writes the GDT, the identity-mapped page tables (U bit set at every level, so
    /// ring 3 can use all of it) and the TSS into the first 64 KiB of guest RAM.
    /// `base` moves the whole 64 KiB window (64 KiB-aligned, below 4 GiB - 64 KiB).
    public func writeLongModeTables(kernelStackTop: UInt64? = nil, base: UInt64 = 0) throws(VMMError) {
        guard base & 0xffff == 0, base < 0xffff_0000 else {
            throw .invalidArgument("table window base \(base) must be 64 KiB-aligned and below 4 GiB")
        }
        let kernelStackTop = kernelStackTop ?? base + GuestLayout.kernelStackTop
        let tss = base + GuestLayout.tss
        let tssDescriptorLow: UInt64 = (UInt64(GuestLayout.tssLimit) & 0xffff) | ((tss & 0xff_ffff) << 16)
            | (0x89 << 40) | ((UInt64(GuestLayout.tssLimit) >> 16 & 0xf) << 48) | ((tss >> 24 & 0xff) << 56)
        let gdt: [UInt64] = [
            0,
            0x00af_9b00_0000_ffff, // 0x08 code64, DPL 0
            0x00cf_9300_0000_ffff, // 0x10 data, DPL 0
            0x00cf_f300_0000_ffff, // 0x18 data, DPL 3
            0x00af_fb00_0000_ffff, // 0x20 code64, DPL 3
            tssDescriptorLow, tss >> 32, // 0x28 64-bit TSS (two slots)
        ]
        for (i, entry) in gdt.enumerated() { try write(base + GuestLayout.gdt + UInt64(i * 8), entry) }
        let userRW: UInt64 = 0x7 // present | writable | user
        try write(base + GuestLayout.pml4, (base + GuestLayout.pdpt) | userRW)
        for gib in 0..<4 {
            let pd = base + GuestLayout.pageDirectories + UInt64(gib) * 0x1000
            try write(base + GuestLayout.pdpt + UInt64(gib * 8), pd | userRW)
            for entry in 0..<512 {
                let address = UInt64(gib) << 30 | UInt64(entry) << 21
                try write(pd + UInt64(entry * 8), address | userRW | 0x80) // 2 MiB page
            }
        }
        // TSS: RSP0 at offset 4, I/O map base at 0x66 pointing just past the 0x68-byte
        // header; the 8 KiB bitmap that follows is zero (every port allowed) and ends in 0xff.
        try writeBytes(tss, [UInt8](repeating: 0, count: Int(GuestLayout.tssLimit) + 1))
        try write(tss + 4, kernelStackTop)
        try write(tss + 0x66, UInt16(0x68))
        try write(tss + UInt64(GuestLayout.tssLimit), UInt8(0xff))
    }
}

extension VCPU {
    /// Gives the vCPU the CPUID the kernel supports, with this vCPU's APIC id.
    /// The paravirtual async page fault bits (leaf 0x40000001) are withdrawn unless
    /// `asyncPF` is set: async PF is done in user space (VMMAsyncPF, the AsyncPF plugin),
    /// never by the kernel, and a guest must not try to enable what nobody serves.
    /// With `asyncPF`, ASYNC_PF and ASYNC_PF_INT are advertised and ASYNC_PF_VMEXIT is not.
    public func configureCPUID(_ kvm: KVM, asyncPF: Bool = false) throws(VMMError) {
        var entries = try kvm.supportedCPUID()
        for i in entries.indices {
            switch entries[i].function {
            case 1:
                entries[i].ebx = (entries[i].ebx & 0x00ff_ffff) | (id << 24)
            case 0xb, 0x1f:
                entries[i].edx = id
            case AsyncPFABI.featuresLeaf:
                entries[i].eax &= ~(AsyncPFABI.featureAsyncPF | AsyncPFABI.featureAsyncPFInt | AsyncPFABI.featureAsyncPFVMExit)
                if asyncPF { entries[i].eax |= AsyncPFABI.featureAsyncPF | AsyncPFABI.featureAsyncPFInt }
            default:
                break
            }
        }
        if asyncPF, !entries.contains(where: { $0.function == AsyncPFABI.featuresLeaf }) {
            throw .capabilityMissing(name: "CPUID leaf 0x40000001", what: "advertising async page faults")
        }
        try setCPUID(entries)
    }

    /// Puts the vCPU in 64-bit long mode with paging on, entering at `entry` with `stack`.
    /// `ring: 3` starts at CPL 3 with IOPL 3 (so port I/O works): ring-3 code runs
    /// natively on kvm_pvm, ring-0 code is emulated. The tables come from
    /// `GuestMemory.writeLongModeTables(base: tables)`, which this calls.
    public func setupLongMode(entry: UInt64, stack: UInt64, ring: Int = 0, interruptsEnabled: Bool = false,
                              tables: UInt64 = 0) throws(VMMError) {
        guard ring == 0 || ring == 3 else { throw .invalidArgument("ring must be 0 or 3, not \(ring)") }
        guard let kvm = vm?.kvm else { throw .closed("virtual machine") }
        try configureCPUID(kvm)
        try memory.writeLongModeTables(base: tables)
        var sregs = try specialRegisters()
        let user = ring == 3
        func segment(_ selector: UInt16, code: Bool) -> Segment {
            var s = Segment()
            s.base = 0
            s.limit = 0xffff_ffff
            s.selector = selector
            s.present = 1
            s.type = code ? 11 : 3
            s.dpl = UInt8(selector & 3)
            s.s = 1
            s.l = code ? 1 : 0
            s.db = code ? 0 : 1
            s.g = 1
            return s
        }
        sregs.cs = segment(user ? GuestLayout.userCodeSelector : GuestLayout.kernelCodeSelector, code: true)
        let data = segment(user ? GuestLayout.userDataSelector : GuestLayout.kernelDataSelector, code: false)
        sregs.ds = data; sregs.es = data; sregs.fs = data; sregs.gs = data; sregs.ss = data
        var tr = Segment()
        tr.base = tables + GuestLayout.tss
        tr.limit = GuestLayout.tssLimit
        tr.selector = GuestLayout.tssSelector
        tr.type = 11 // busy 64-bit TSS
        tr.present = 1
        sregs.tr = tr
        sregs.gdt.base = tables + GuestLayout.gdt
        sregs.gdt.limit = 0x37
        sregs.idt.base = tables + GuestLayout.idt
        sregs.idt.limit = 0 // no IDT until the guest installs one: any exception triple-faults
        sregs.cr0 = 0x8005_0033 // PG | AM | WP | NE | ET | MP | PE
        sregs.cr3 = tables + GuestLayout.pml4
        sregs.cr4 = 0x20 // PAE
        sregs.efer = 0x500 // LME | LMA
        try setSpecialRegisters(sregs)
        var regs = Registers()
        regs.rip = entry
        regs.rsp = stack
        regs.rflags = 0x2 | (user ? 0x3000 : 0) | (interruptsEnabled ? 0x200 : 0)
        try setRegisters(regs)
    }

    /// Real mode: CS = `segment`, IP = `offset` (a flat 16-bit payload at segment * 16).
    public func setupRealMode(segment: UInt16, offset: UInt16, stack: UInt16 = 0xfffe) throws(VMMError) {
        var sregs = try specialRegisters()
        func real(_ s: inout Segment) { s.selector = segment; s.base = UInt64(segment) << 4 }
        real(&sregs.cs); real(&sregs.ds); real(&sregs.es); real(&sregs.ss); real(&sregs.fs); real(&sregs.gs)
        try setSpecialRegisters(sregs)
        var regs = Registers()
        regs.rip = UInt64(offset)
        regs.rsp = UInt64(stack)
        regs.rflags = 0x2
        try setRegisters(regs)
    }
}
