/// The SMBIOS 2.8 tables (DMTF DSP0134) a PC's BIOS leaves in memory, as SeaBIOS does
/// under QEMU's `pc` machine: the 31-byte entry point ("_SM_", then "_DMI_") on a
/// 16-byte boundary of [0xf0000, 0x100000), where Linux's `dmi_scan` and other kernels
/// search, and the structure table right after it. The structures QEMU gives: BIOS (0),
/// system (1), enclosure (3), one processor per vCPU (4), the memory array (16), one
/// memory device (17), one mapped range per RAM range (19), boot status (32) and the end
/// (127). The machine is named as QEMU names it ("QEMU", "Standard PC (i440FX + PIIX,
/// 1996)"), since guests that read DMI recognise the machine by it; the BIOS is this
/// loader's ("VMMKit"), as the Multiboot boot loader name is.
enum SMBIOSTables {
    static let entryPointSize = 0x1f
    static let manufacturer = "QEMU"
    static let product = "Standard PC (i440FX + PIIX, 1996)"
    static let version = "pc-i440fx"

    /// One structure: its formatted part (type, length, handle first) and its strings.
    private static func structure(_ type: UInt8, handle: UInt16, _ fields: [UInt8], strings: [String] = []) -> [UInt8] {
        var s = [type, UInt8(4 + fields.count)] + le(handle) + fields
        for text in strings { s += Array(text.utf8) + [0] }
        return s + (strings.isEmpty ? [0, 0] : [0])
    }

    /// The entry point and the table for `processors` vCPUs and RAM of `lowRAM` bytes at 0
    /// and `highRAM` at 4 GiB, at guest-physical `base` (16-byte aligned, below 4 GiB).
    static func bytes(processors: Int, lowRAM: UInt64, highRAM: UInt64, uuid: [UInt8], at base: UInt32) -> [UInt8] {
        var structures: [[UInt8]] = []
        // BIOS: vendor, version, segment 0xe800, date, 64 KiB, "characteristics not
        // supported"; extension byte 2 bit 4: a virtual machine; release 0.0, no EC.
        structures.append(structure(0, handle: 0, [1, 2] + le(UInt16(0xe800)) + [3, 0] + le(UInt64(0x08)) + [0, 0x10, 0, 0, 0xff, 0xff],
                                    strings: ["VMMKit", "1.0", "01/01/2026"]))
        // System: manufacturer, product, version, no serial, the UUID (its first three
        // fields little-endian, as SMBIOS 2.6 and QEMU encode it), power switch.
        let encoded = Array(uuid[0..<4].reversed()) + Array(uuid[4..<6].reversed()) + Array(uuid[6..<8].reversed()) + Array(uuid[8..<16])
        structures.append(structure(1, handle: 0x100, [1, 2, 3, 0] + encoded + [6, 0, 0],
                                    strings: [manufacturer, product, version]))
        // Enclosure: "other", safe states, security unknown, no cords or elements.
        structures.append(structure(3, handle: 0x300, [1, 1, 2, 0, 0, 3, 3, 3, 2] + le(UInt32(0)) + [0, 0, 0, 0, 0],
                                    strings: [manufacturer, version]))
        // Processors: central, family "other", populated and enabled, one core and thread.
        for n in 0..<processors {
            let fields: [UInt8] = [1, 3, 1, 2] + le(UInt64(0)) + [3, 0] + le(UInt16(0)) + le(UInt16(2000)) + le(UInt16(2000))
                + [0x41, 1] + le(UInt16(0xffff)) + le(UInt16(0xffff)) + le(UInt16(0xffff)) + [0, 0, 0, 1, 1, 1]
                + le(UInt16(0x02)) + le(UInt16(0x01))
            structures.append(structure(4, handle: UInt16(0x400 + n), fields, strings: ["CPU \(n)", manufacturer, version]))
        }
        // Memory: one array of all RAM, one device of it, one mapped range per RAM range.
        let totalKiB = (lowRAM + highRAM) >> 10, totalMiB = (lowRAM + highRAM) >> 20
        let capacity = totalKiB < 0x8000_0000 ? UInt32(totalKiB) : 0x8000_0000
        structures.append(structure(16, handle: 0x1000, [1, 3, 6] + le(capacity) + le(UInt16(0xfffe)) + le(UInt16(1))
                                    + le(UInt64(capacity == 0x8000_0000 ? totalKiB << 10 : 0))))
        let size = totalMiB < 0x7fff ? UInt16(totalMiB) : 0x7fff
        structures.append(structure(17, handle: 0x1100, le(UInt16(0x1000)) + le(UInt16(0xfffe)) + le(UInt16(0xffff)) + le(UInt16(0xffff))
                                    + le(size) + [0x09, 0, 1, 0, 0x07] + le(UInt16(0x02)) + le(UInt16(0)) + [2, 0, 0, 0, 0]
                                    + le(UInt32(size == 0x7fff ? UInt32(truncatingIfNeeded: totalMiB) : 0)) + le(UInt16(0))
                                    + le(UInt16(0)) + le(UInt16(0)) + le(UInt16(0)),
                                    strings: ["DIMM 0", manufacturer]))
        for (i, (start, length)) in [(UInt64(0), lowRAM), (UInt64(1) << 32, highRAM)].enumerated() where length > 0 {
            let first = start >> 10, last = (start + length) >> 10 - 1
            let fits = last < 0xffff_ffff
            structures.append(structure(19, handle: UInt16(0x1300 + i), le(fits ? UInt32(first) : 0xffff_ffff) + le(fits ? UInt32(last) : 0xffff_ffff)
                                        + le(UInt16(0x1000)) + [1] + le(fits ? 0 : first << 10) + le(fits ? 0 : (start + length - 1))))
        }
        structures.append(structure(32, handle: 0x2000, [0, 0, 0, 0, 0, 0, 0]))
        structures.append(structure(127, handle: 0x7f00, []))

        let table = structures.flatMap { $0 }
        let largest = structures.map(\.count).max() ?? 0
        var entry = Array("_SM_".utf8) + [0, UInt8(entryPointSize), 2, 8] + le(UInt16(largest)) + [0, 0, 0, 0, 0, 0]
        entry += Array("_DMI_".utf8) + [0] + le(UInt16(table.count)) + le(base + UInt32(entryPointSize + 1)) + le(UInt16(structures.count)) + [0x28]
        entry[0x15] = zeroSumByte(Array(entry[0x10..<0x1f]))
        entry[0x04] = zeroSumByte(entry)
        // The table starts on the next byte after a pad byte (16-byte entry, odd size).
        return entry + [0] + table
    }
}
