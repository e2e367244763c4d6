/// What a PC's BIOS leaves in memory for the kernel it boots, as SeaBIOS does under
/// QEMU's `pc` machine, for a VM with KVM's in-kernel irqchip: the Intel MP table
/// (`MPTable`), the ACPI tables (`ACPITables`) and the SMBIOS tables (`SMBIOSTables`)
/// in the BIOS area, and the BIOS data
/// area's words that say where to search. Guests find their processors, the I/O APIC,
/// the ISA interrupts' pins and how to switch the machine off in them. The BIOS data
/// area also says what SeaBIOS found on QEMU's `pc`: COM1 at port 0x3f8 and a VGA in
/// text mode 3 (80x25 colour at 0xb8000, its CRT controller at port 0x3d4), which
/// hobby kernels read before they print (`biosDataWords`).
///
/// ```swift
/// let loader = ImageLoader(memory: vm.memory, ramSize: ram, firmware: try PCFirmware(processors: 2))
/// ```
public struct PCFirmware: Sendable, Equatable {
    /// The MP floating pointer and table; the ACPI tables after them, the RSDP first.
    /// Both in [0xe0000, 0x100000), where guests search, 0xf0000 up as SeaBIOS has them.
    public static let mpTableAddress: UInt64 = 0xf_0000
    public static let acpiAddress: UInt64 = 0xf_2000
    /// The SMBIOS entry point, its structure table after it (at most 255 processors' ACPI
    /// tables end below it, and its table below 1 MiB: `PCFirmwareTests`).
    public static let smbiosAddress: UInt64 = 0xf_5000
    /// Where the FADT puts ACPI's fixed hardware, as QEMU's `pc` and `q35` firmware (the PM
    /// base 0x600): the PM1a event block (status, enable), the PM1a control block and the
    /// PM timer; and the SCI's ISA IRQ (level, active high, the MADT's override). A VMM
    /// places its power-management device at these ports (the launcher's
    /// `ACPIPowerManagement` and `ACPIPMTimer`), so what the guest is told is where it is.
    public static let pm1aEventPort: UInt16 = 0x600
    public static let pm1aControlPort: UInt16 = 0x604
    public static let pmTimerPort: UInt16 = 0x608
    public static let sciIRQ: UInt8 = 9
    /// QEMU `pc`'s HPET, which the ACPI HPET table names: its register block and its
    /// event timer block ID (the low half of its capabilities register: vendor 0x8086,
    /// LegacyReplacement capable, a 64-bit counter, 3 timers, revision 1). A VMM puts its
    /// HPET there (the launcher's `HPET`).
    public static let hpetAddress: UInt64 = 0xfed0_0000
    public static let hpetBlockID: UInt32 = 0x8086_a201
    /// Local APIC IDs are one byte and 0xff is the broadcast ID.
    public static let maxProcessors = 255
    /// BIOS data area: the EBDA's segment (0x9fc0: the KiB below 640 KiB that memory maps
    /// leave out) and the base memory size in KiB (639), which guests read to find where
    /// to search.
    static let ebdaSegmentWord: UInt64 = 0x40e, baseMemoryWord: UInt64 = 0x413
    /// The rest of the BIOS data area a guest reads, as SeaBIOS leaves it: COM1's port;
    /// the equipment word (one floppy drive, FPU, 80x25 colour video, one serial port);
    /// the video mode (3), columns (80), page size (4 KiB), CRT controller port (0x3d4),
    /// rows - 1 (24) and character height (16); the drive-present byte 0x48f (7: drive 0
    /// present, with change line, multi-rate). The floppy is the empty drive A QEMU's
    /// `pc` has and its CMOS names (0x10 = 0x50): SeaBIOS's `map_floppy_drive`
    /// (src/block.c) sets bit 0 of the word and 0x48f for it. (address, bytes)
    static let biosDataWords: [(UInt64, [UInt8])] = [
        (0x400, le(UInt16(0x3f8))), (0x410, le(UInt16(0x0223))), (0x449, [3]), (0x44a, le(UInt16(80))),
        (0x44c, le(UInt16(0x1000))), (0x463, le(UInt16(0x3d4))), (0x484, [24]), (0x485, le(UInt16(16))),
        (0x48f, [0x07]),
    ]

    /// The ISA devices the DSDT describes, each at the ports and IRQ QEMU's `pc` machine
    /// has it (`DSDT`); a VMM names those it puts there.
    public struct Devices: OptionSet, Sendable, Hashable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        /// The i8042's keyboard (ports 0x60 and 0x64, IRQ 1) and mouse (IRQ 12).
        public static let keyboard = Devices(rawValue: 1 << 0)
        /// COM1: a 16550A UART at port 0x3f8, IRQ 4.
        public static let serial = Devices(rawValue: 1 << 1)
        /// The CMOS RTC: ports 0x70-0x77, IRQ 8.
        public static let rtc = Devices(rawValue: 1 << 2)
        /// QEMU's fw_cfg with its DMA interface: ports 0x510-0x51b (`QEMU0002`).
        public static let fwCfg = Devices(rawValue: 1 << 3)
        /// QEMU's ISA pvpanic: port 0x505 (`QEMU0001`).
        public static let pvpanic = Devices(rawValue: 1 << 4)
        /// QEMU's floppy controller with drive A: ports 0x3f2-0x3f5 and 0x3f7, IRQ 6, DMA 2 (`PNP0700`).
        public static let floppy = Devices(rawValue: 1 << 5)
        /// LPT1: a parallel port at 0x378, IRQ 7 (`PNP0400`).
        public static let parallel = Devices(rawValue: 1 << 6)
        /// Every device the DSDT can describe (the widest tables).
        public static let all: Devices = [.keyboard, .serial, .rtc, .fwCfg, .pvpanic, .floppy, .parallel]
    }

    public let processors: Int
    /// Whether the ACPI tables name an HPET at `hpetAddress` (QEMU's `-machine hpet=off`:
    /// no): its HPET table, and its device in the DSDT.
    public let hpet: Bool
    /// The devices the DSDT describes besides the HPET.
    public let devices: Devices
    /// The machine's UUID, 16 bytes in RFC 4122 order (QEMU's `-uuid`; zeros when none is
    /// given, as QEMU's): SMBIOS's system UUID.
    public let uuid: [UInt8]

    /// `processors` vCPUs, the first the bootstrap processor, local APIC ID = index; an
    /// HPET unless `hpet` is false; the ISA `devices` in the DSDT; `uuid` 16 bytes.
    public init(processors: Int, hpet: Bool = true, devices: Devices = [],
                uuid: [UInt8] = [UInt8](repeating: 0, count: 16)) throws(LoaderError) {
        guard (1...Self.maxProcessors).contains(processors) else {
            throw LoaderError(.request, "the firmware tables describe 1 to \(Self.maxProcessors) processors, not \(processors)")
        }
        guard uuid.count == 16 else { throw LoaderError(.request, "a machine UUID is 16 bytes, not \(uuid.count)") }
        self.processors = processors
        self.hpet = hpet
        self.devices = devices
        self.uuid = uuid
    }

    /// The MP floating pointer and configuration table, for `mpTableAddress`.
    public var mpTable: [UInt8] { MPTable.bytes(processors: processors, at: UInt32(Self.mpTableAddress)) }
    /// The RSDP and the tables it leads to, for `acpiAddress`.
    public var acpiTables: [UInt8] { ACPITables.bytes(processors: processors, at: UInt32(Self.acpiAddress), hpet: hpet, devices: devices) }
    /// The SMBIOS entry point and structures, for `smbiosAddress`, for RAM of `lowRAM` bytes
    /// at 0 and `highRAM` at 4 GiB.
    public func smbiosTables(lowRAM: UInt64, highRAM: UInt64) -> [UInt8] {
        SMBIOSTables.bytes(processors: processors, lowRAM: lowRAM, highRAM: highRAM, uuid: uuid, at: UInt32(Self.smbiosAddress))
    }
}

extension ImageLoader {
    /// Writes `firmware`'s tables and BIOS data words where the image, its modules and
    /// the loader's window (`used`) leave the whole BIOS-area range free and RAM covers
    /// it; otherwise nothing (an image in the BIOS area has no BIOS). Says which.
    func writeFirmwareTables(avoiding used: [Range<UInt64>]) throws(LoaderError) -> Bool {
        guard let firmware else { return false }
        let mp = firmware.mpTable, acpi = firmware.acpiTables
        let smbios = firmware.smbiosTables(lowRAM: ramSize, highRAM: highRAMSize)
        let range = PCFirmware.mpTableAddress..<PCFirmware.smbiosAddress + UInt64(smbios.count)
        guard range.upperBound <= ramSize, !used.contains(where: { $0.overlaps(range) }) else { return false }
        try write(le(UInt16(Self.conventionalMemoryEnd >> 4)), at: PCFirmware.ebdaSegmentWord)
        try write(le(UInt16(Self.conventionalMemoryEnd >> 10)), at: PCFirmware.baseMemoryWord)
        for (address, bytes) in PCFirmware.biosDataWords { try write(bytes, at: address) }
        try write(mp, at: PCFirmware.mpTableAddress)
        try write(acpi, at: PCFirmware.acpiAddress)
        try write(smbios, at: PCFirmware.smbiosAddress)
        return true
    }
}

/// The byte that makes all of `bytes` sum to 0 (mod 256): the MP and ACPI checksums.
func zeroSumByte(_ bytes: [UInt8]) -> UInt8 { 0 &- bytes.reduce(0, &+) }
