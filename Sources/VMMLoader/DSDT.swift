/// The DSDT's AML: `\_S5_` (sleep type 0, how to switch the machine off) and, in `\_SB`,
/// the ISA devices a VMM says it has (`PCFirmware.Devices`) and the HPET, each as QEMU's
/// `pc` machine describes it (its `_HID`, `_UID`, `_STA` and `_CRS`), so an OS that
/// enumerates devices through ACPI (Linux's PNP layer: its i8042, serial, RTC, HPET,
/// fw_cfg and pvpanic drivers; Windows's floppy controller) finds them. QEMU nests the ISA devices in `\_SB.PCI0.ISA`
/// and fw_cfg in `\_SB.PCI0`; without a PCI root bridge in the namespace (whose `_CRS`
/// would decide how an OS sees PCI) they sit in `\_SB` itself, where an OS looks for
/// devices as well.
enum DSDT {
    /// The body of the DSDT (after its header).
    static func body(devices: PCFirmware.Devices, hpet: Bool) -> [UInt8] {
        let s5 = AML.name("_S5_", [0x12, 0x06, 0x04, 0x00, 0x00, 0x00, 0x00]) // Package(4) { 0, 0, 0, 0 }
        var sb: [UInt8] = []
        if devices.contains(.keyboard) {
            sb += AML.device("KBD", present(eisa: "PNP0303", [AML.io(0x60, alignment: 1, length: 1), AML.io(0x64, alignment: 1, length: 1), AML.irq(1)]))
            sb += AML.device("MOU", present(eisa: "PNP0F13", [AML.irq(12)]))
        }
        if devices.contains(.serial) {
            sb += AML.device("COM1", AML.name("_UID", AML.integer(1))
                + present(eisa: "PNP0501", [AML.io(0x3f8, alignment: 0, length: 8), AML.irq(4)]))
        }
        if devices.contains(.parallel) {
            sb += AML.device("LPT1", AML.name("_HID", AML.eisaID("PNP0400")) + AML.name("_UID", AML.integer(1))
                + AML.name("_STA", AML.integer(0xf)) + AML.name("_CRS", AML.resources([AML.io(0x378, alignment: 8, length: 8), AML.irq(7)])))
        }
        if devices.contains(.rtc) {
            sb += AML.device("RTC", present(eisa: "PNP0B00", [AML.io(0x70, alignment: 1, length: 8), AML.irq(8)]))
        }
        if devices.contains(.floppy) {
            sb += floppyController
        }
        if hpet {
            sb += AML.device("HPET", AML.name("_UID", AML.integer(0))
                + present(eisa: "PNP0103", [AML.memory32Fixed(UInt32(PCFirmware.hpetAddress), length: 0x400, writable: false)]))
        }
        if devices.contains(.fwCfg) {
            // The selector, data and DMA address registers; present, not shown in a UI.
            sb += AML.device("FWCF", AML.name("_HID", AML.string("QEMU0002")) + AML.name("_STA", AML.integer(0xb))
                + AML.name("_CRS", AML.resources([AML.io(0x510, alignment: 1, length: 0x0c)])))
        }
        if devices.contains(.pvpanic) {
            sb += AML.device("PEVT", AML.name("_HID", AML.string("QEMU0001")) + AML.name("_STA", AML.integer(0xb))
                + AML.name("_CRS", AML.resources([AML.io(0x505, alignment: 1, length: 1)])))
        }
        return s5 + (sb.isEmpty ? [] : AML.scope("\\_SB", sb))
    }

    /// QEMU's `FDC0` (hw/block/fdc-isa.c) for its `pc`'s controller with drive A, no _STA:
    /// the ports 0x3f2-0x3f5 and 0x3f7, IRQ 6 and DMA channel 2; drive A (`FLPA`) with its
    /// `_FDI`, the 2.88 MB drive's limits (type 5, cylinders to 79, 48 sectors, heads to 1)
    /// and the INT 13h parameters SeaBIOS gives every drive; `_FDE`, drive A present and
    /// no tape (2).
    private static var floppyController: [UInt8] {
        let fdi: [UInt64] = [0, 5, 79, 48, 1, 0xaf, 0x02, 0x25, 0x02, 0x12, 0x1b, 0xff, 0x6c, 0xf6, 0x0f, 0x08]
        let drive = AML.device("FLPA", AML.name("_ADR", AML.integer(0)) + AML.name("_FDI", AML.dataPackage(fdi.map { AML.integer($0) })))
        let fde: [UInt8] = [1, 0, 0, 0] + [UInt8](repeating: 0, count: 12) + [2, 0, 0, 0]
        let crs = AML.resources([AML.io(0x3f2, alignment: 0, length: 4), AML.io(0x3f7, alignment: 0, length: 1), AML.irq(6), AML.dma(2)])
        return AML.device("FDC0", AML.name("_HID", AML.eisaID("PNP0700")) + AML.name("_CRS", crs) + drive + AML.name("_FDE", AML.buffer(fde)))
    }

    /// `_HID` (an EISA ID), `_STA` 0xf (present, enabled, shown, working) and `_CRS`.
    private static func present(eisa: String, _ resources: [[UInt8]]) -> [UInt8] {
        AML.name("_HID", AML.eisaID(eisa)) + AML.name("_STA", AML.integer(0xf)) + AML.name("_CRS", AML.resources(resources))
    }
}
