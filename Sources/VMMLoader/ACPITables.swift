/// The ACPI tables QEMU's `pc` machine gives a guest (through SeaBIOS), reduced to what
/// this machine has: an RSDP (revision 0, as QEMU's `pc`) naming an RSDT, a FADT
/// (revision 1) naming the PM1a event block (port 0x600), control block (0x604) and the
/// 24-bit PM timer (0x608), `PCFirmware`'s ports (the launcher's `ACPIPowerManagement`
/// and `ACPIPMTimer`; the power button a fixed feature), with its FACS and a DSDT that
/// names `\_S5_` (sleep type 0, as QEMU's) and describes the machine's ISA devices and
/// HPET (`DSDT`), and
/// a MADT: a local APIC per processor (ID = index), the I/O APIC (ID 0, GSI base 0) and
/// QEMU's interrupt source overrides: ISA IRQ 0 (the PIT) on GSI 2, flags 0 (as the bus),
/// since `VirtualMachine.pcGSIRouting` puts it on I/O APIC pin 2, and the SCI's, ISA IRQ
/// 9 level-triggered, active high; NMI on every LINT1. Other ISA IRQs are GSIs of the
/// same number;
/// and an HPET table (`PCFirmware.hpetAddress`, HPET number 0, no minimum tick or page
/// protection, as QEMU's), after the MADT.
/// No GPE block, sleep button, processor objects or PCI root bridge in the DSDT: what is
/// not modelled is not described (processors are the MADT's; PCI is found by probing).
enum ACPITables {
    /// Offsets from the blob's base: the RSDP first (16-byte aligned, in the area a guest
    /// searches), the FACS 64-byte aligned, the DSDT, then the MADT and the HPET table
    /// 16-byte aligned after it (their sizes grow with devices and processors).
    static let rsdt = 0x40, facs = 0x80, fadt = 0xc0, dsdt = 0x140
    static let pm1aEvent = UInt32(PCFirmware.pm1aEventPort), pm1aControl = UInt32(PCFirmware.pm1aControlPort)
    static let pmTimer = UInt32(PCFirmware.pmTimerPort)
    static let sciIRQ = PCFirmware.sciIRQ

    /// The tables for `processors` vCPUs, to be placed at guest-physical `base` (below 4 GiB);
    /// the HPET's table and device too with `hpet`, and `devices` in the DSDT.
    static func bytes(processors: Int, at base: UInt32, hpet withHPET: Bool = true, devices: PCFirmware.Devices = []) -> [UInt8] {
        let dsdt = header("DSDT", revision: 2, body: DSDT.body(devices: devices, hpet: withHPET))
        let facs = Array("FACS".utf8) + le(UInt32(64)) + [UInt8](repeating: 0, count: 56) // no checksum
        let madt = header("APIC", revision: 1, body: madtBody(processors))
        let fadt = header("FACP", revision: 1, body: fadtBody(facs: base + UInt32(Self.facs), dsdt: base + UInt32(Self.dsdt)))
        let madtAt = (Self.dsdt + dsdt.count + 15) & ~15
        let hpetAt = (madtAt + madt.count + 15) & ~15
        let hpet = withHPET ? header("HPET", revision: 1, body: hpetBody()) : []
        let rsdt = header("RSDT", revision: 1, body: le(base + UInt32(Self.fadt)) + le(base + UInt32(madtAt))
                          + (withHPET ? le(base + UInt32(hpetAt)) : []))
        var rsdp = Array("RSD PTR ".utf8) + [0] + Array("VMMKIT".utf8) + [0] + le(base + UInt32(Self.rsdt))
        rsdp[8] = zeroSumByte(rsdp)

        var blob = [UInt8](repeating: 0, count: withHPET ? hpetAt + hpet.count : madtAt + madt.count)
        var tables = [(0, rsdp), (Self.rsdt, rsdt), (Self.facs, facs), (Self.fadt, fadt), (Self.dsdt, dsdt), (madtAt, madt)]
        if withHPET { tables.append((hpetAt, hpet)) }
        for (offset, table) in tables {
            blob.replaceSubrange(offset..<offset + table.count, with: table)
        }
        return blob
    }

    private static func madtBody(_ processors: Int) -> [UInt8] {
        var body = le(MPTable.localAPIC) + le(UInt32(1)) // PCAT_COMPAT: the 8259s are there too
        for id in 0..<processors { body += [0, 8, UInt8(id), UInt8(id)] + le(UInt32(1)) } // enabled
        body += [1, 12, MPTable.ioAPICID, 0] + le(MPTable.ioAPIC) + le(UInt32(0))
        body += [2, 10, 0, 0] + le(UInt32(2)) + le(UInt16(0)) // bus ISA, IRQ 0 -> GSI 2, as the bus
        body += [2, 10, 0, Self.sciIRQ] + le(UInt32(Self.sciIRQ)) + le(UInt16(0xd)) // bus ISA, level, high
        body += [4, 6, 0xff] + le(UInt16(0)) + [1] // NMI on every processor's LINT1
        return body
    }

    /// The event timer block ID, the register block as system memory (widths 0, as
    /// QEMU's), HPET number 0, minimum periodic tick 0, no page protection.
    private static func hpetBody() -> [UInt8] {
        le(PCFirmware.hpetBlockID) + [0, 0, 0, 0] + le(PCFirmware.hpetAddress) + [0] + le(UInt16(0)) + [0]
    }

    /// FADT revision 1 (ACPI 1.0, 116 bytes), as QEMU's `pc` machine: no SMI command port,
    /// so the machine is in ACPI mode from the start.
    private static func fadtBody(facs: UInt32, dsdt: UInt32) -> [UInt8] {
        var body = le(facs) + le(dsdt) + [1, 0] + le(UInt16(Self.sciIRQ)) // model, profile, SCI
        body += le(UInt32(0)) + [0, 0, 0, 0] // SMI_CMD, ACPI_ENABLE/DISABLE, S4BIOS_REQ, PSTATE_CNT
        body += le(Self.pm1aEvent) + le(UInt32(0)) + le(Self.pm1aControl) + le(UInt32(0))
        body += le(UInt32(0)) + le(Self.pmTimer) + le(UInt32(0)) + le(UInt32(0)) // no PM2; PM timer; no GPE0, GPE1
        body += [4, 2, 0, 4, 0, 0, 0, 0] // PM1 event, control and PM timer lengths; no other block
        body += le(UInt16(0xffff)) + le(UInt16(0xffff)) // C2, C3 latency: not supported
        body += le(UInt16(0)) + le(UInt16(0)) + [0, 0, 0, 0, 0x32] // flush, duty, alarms; CMOS century
        // Reserved; WBINVD, PROC_C1, the power button a fixed feature (PWR_BUTTON clear: its
        // status and enable are PM1a's bit 8), no sleep button; TMR_VAL_EXT clear: the PM
        // timer counts 24 bits, as QEMU's.
        body += [0, 0, 0] + le(UInt32(0x25))
        return body
    }

    /// A table: the 36-byte header (length, revision, checksum, OEM and creator) and `body`.
    private static func header(_ signature: String, revision: UInt8, body: [UInt8]) -> [UInt8] {
        var table = Array(signature.utf8) + le(UInt32(36 + body.count)) + [revision, 0]
        table += Array("VMMKIT".utf8) + Array("VMMKit  ".utf8) + le(UInt32(1)) + Array("VMMK".utf8) + le(UInt32(1))
        table += body
        table[9] = zeroSumByte(table)
        return table
    }
}
