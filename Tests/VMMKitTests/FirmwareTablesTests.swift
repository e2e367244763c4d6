import Foundation
import Testing
import VMMKit
import VMMLoader

/// The MP and ACPI tables a PC's BIOS leaves (SeaBIOS under QEMU), `PCFirmware`: kernels
/// written for QEMU (Examples/GuestImages/qemu/mptable.S, acpi.S) find their processors,
/// the I/O APIC, IRQ 0's pin and the way to switch off in them, compare them with the
/// hardware and act on what they read; the loader's side with its bounds.
@Suite("Firmware tables on real KVM", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct FirmwareTablesTests {
    @Test("a kernel for a PC reads the MP table, finds it true of the APICs, starts each AP by its ID and takes IRQ 0 on the pin it names")
    func guestUsesTable() throws {
        let r = try VMMProcess.run(["run", VMMProcess.guest("mptable.elf"), "--vcpus", "3", "--max-seconds", "60"])
        #expect(r.stdout == """
            bda: base memory KiB 0000027F, EBDA segment 00009FC0
            mp: floating pointer at 000F0000, table at 000F0010
            mp: entries 00000016, local APICs at FEE00000
            mp: processors 00000003, bootstrap APIC ID 00000000 version 00000014; its registers: ID 00000000 version 00000014
            mp: I/O APIC ID 00000000 version 00000011 at FEC00000; its registers: ID 00000000 version 00000011
            mp: ISA IRQ 0 on I/O APIC pin 00000002
            mp: started APIC ID 00000001
            mp: started APIC ID 00000002
            timer: ISA IRQ 0 arrived through pin 00000002

            """)
        #expect(r.stderr == "")
        #expect(r.status == 0)
    }

    @Test("255 vCPUs, QEMU pc's most: the MP table names each, every AP starts by its APIC ID, the MADT and fw_cfg count them; 256 is refused")
    func mostVCPUs() throws {
        let r = try VMMProcess.run(["run", VMMProcess.guest("mptable.elf"), "--vcpus", "255", "--max-seconds", "120"])
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(lines.contains("mp: processors 000000FF, bootstrap APIC ID 00000000 version 00000014; its registers: ID 00000000 version 00000014"))
        let started = lines.filter { $0.hasPrefix("mp: started APIC ID ") }
        #expect(started == (1..<255).map { "mp: started APIC ID " + String(format: "%08X", $0) })
        #expect(lines.last == "timer: ISA IRQ 0 arrived through pin 00000002" && r.stderr == "" && r.status == 0, "\(r.stderr)")
        let acpi = try VMMProcess.run(["run", VMMProcess.guest("acpi.elf"), "--vcpus", "255", "--max-seconds", "120"])
        #expect(acpi.stdout.contains("acpi: MADT: processors 000000FF; fw_cfg's CPU count 000000FF\n") && acpi.status == 0, "\(acpi.stdout)")
        let refused = try VMMProcess.run(["run", VMMProcess.guest("mptable.elf"), "--vcpus", "256"])
        #expect(refused.status == 2 && refused.stderr == "vmm: --vcpus must be from 1 to 255, not 256\n", "\(refused.stderr)")
    }

    @Test("a kernel reads the SMBIOS tables as Linux's dmi_scan finds them: both checksums, version 2.8, every structure QEMU gives (the machine named as QEMU names it, --uuid its UUID as SMBIOS encodes it and as fw_cfg holds it), one processor per vCPU, one range per part of RAM; none without the irqchip")
    func guestReadsSMBIOS() throws {
        let r = try VMMProcess.run(["run", VMMProcess.guest("smbios.elf"), "--vcpus", "2", "--memory", "5G", "--max-seconds", "60",
                                    "--uuid", "12345678-9abc-DEF0-1122-334455667788"])
        #expect(r.stdout == """
            smbios: entry point at 000F5000, checksum 00000000, _DMI_ checksum 00000000, version 02.08
            smbios: table at 000F5020, length 000001C5, structures 0000000B
            smbios: type 00 handle 0000 VMMKit|1.0|01/01/2026
            smbios: type 01 handle 0100 uuid 78563412BC9AF0DE1122334455667788 QEMU|Standard PC (i440FX + PIIX, 1996)|pc-i440fx
            smbios: type 03 handle 0300 QEMU|pc-i440fx
            smbios: type 04 handle 0400 CPU 0|QEMU|pc-i440fx
            smbios: type 04 handle 0401 CPU 1|QEMU|pc-i440fx
            smbios: type 10 handle 1000
            smbios: type 11 handle 1100 DIMM 0|QEMU
            smbios: type 13 handle 1300 KiB 00000000-002FFFFF
            smbios: type 13 handle 1301 KiB 00400000-005FFFFF
            smbios: type 20 handle 2000
            smbios: type 7F handle 7F00
            smbios: type 127 ends at 000F51E5, structures left 00000000
            smbios: processors 00000002; fw_cfg's CPU count 00000002
            smbios: fw_cfg's UUID 123456789ABCDEF01122334455667788

            """)
        #expect(r.stderr == "" && r.status == (0x28 << 1) | 1)
        // Without --uuid both are zeros, as QEMU's; a malformed one is refused.
        let plain = try VMMProcess.run(["run", VMMProcess.guest("smbios.elf"), "--max-seconds", "60"])
        #expect(plain.stdout.contains("smbios: type 01 handle 0100 uuid 00000000000000000000000000000000 QEMU|"))
        #expect(plain.stdout.hasSuffix("smbios: fw_cfg's UUID 00000000000000000000000000000000\n"))
        for bad in ["12345678-9abc-def0-1122-33445566778", "12345678-9abc-def0-1122-33445566778g", "123456789abcdef0112233445566778899", "x"] {
            let refused = try VMMProcess.run(["run", VMMProcess.guest("smbios.elf"), "--uuid", bad])
            #expect(refused.status == 2 && refused.stderr == "vmm: --uuid must be 8-4-4-4-12 hex digits, not \(bad.quotedForMessage)\n", "\(refused.stderr)")
        }
        let none = try VMMProcess.run(["run", VMMProcess.guest("smbios.elf"), "--irqchip", "none", "--max-seconds", "60"])
        #expect(none.stdout == "smbios: no entry point in [0xf0000, 0x100000)\n" && none.status == (0x28 << 1) | 1)
    }

    @Test("without the in-kernel irqchip there are no APICs to describe: no table, no BIOS data")
    func noIRQChipNoTable() throws {
        let r = try VMMProcess.run(["run", VMMProcess.guest("mptable.elf"), "--irqchip", "none", "--max-seconds", "60"])
        #expect(r.stdout == """
            bda: base memory KiB 00000000, EBDA segment 00000000
            mp: no floating pointer in [0xf0000, 0x100000)

            """)
        #expect(r.status == 0)
    }

    @Test("a kernel for a PC finds the RSDP, checks every table, finds the MADT true of the APICs and fw_cfg, the HPET where the HPET table says, and switches off by the FADT and \\_S5_")
    func guestUsesACPI() throws {
        let r = try VMMProcess.run(["run", VMMProcess.guest("acpi.elf"), "--vcpus", "3", "--max-seconds", "60"])
        // No "still running after SLP_EN": the write switched the machine off. How many
        // reads the PM timer's 0.1 s took varies (ACPIPMTimerTests looks at it).
        let timed = r.stdout.split(separator: "\n", omittingEmptySubsequences: false).map {
            $0.hasPrefix("acpi: PM timer: 0.1 s in ") ? "acpi: PM timer: 0.1 s in N" + $0.dropFirst(33) : $0
        }.joined(separator: "\n")
        #expect(timed == """
            acpi: RSDP at 000F2000, revision 00000000, RSDT at 000F2040
            acpi: table RSDT at 000F2040, length 00000030
            acpi: table FACP at 000F20C0, length 00000074
            acpi: FADT: PM1a control port 00000604, SCI IRQ 00000009, DSDT at 000F2140
            acpi: FADT: PM timer port 00000608, length 00000004, flags 00000025
            acpi: table APIC at 000F2360, length 0000006A
            acpi: MADT: local APICs at FEE00000, flags 00000001
            acpi: MADT: ISA IRQ 00000000 -> GSI 00000002, flags 00000000
            acpi: MADT: ISA IRQ 00000009 -> GSI 00000009, flags 0000000D
            acpi: MADT: NMI on processor 000000FF, LINT 00000001
            acpi: MADT: processors 00000003; fw_cfg's CPU count 00000003
            acpi: MADT: first processor's APIC ID 00000000; its register says 00000000
            acpi: MADT: I/O APIC ID 00000000 at FEC00000, GSI base 00000000; its register says 00000000
            acpi: table HPET at 000F23D0, length 00000038
            acpi: HPET: event timer block 8086A201, registers at FED00000, address space 00000000
            acpi: table DSDT at 000F2140, length 00000212
            acpi: DSDT: \\_S5_ sleep type 00000000
            acpi: DSDT: device KBD_ _HID 0303D041
            acpi: DSDT: device MOU_ _HID 130FD041
            acpi: DSDT: device COM1 _HID 0105D041
            acpi: DSDT: device LPT1 _HID 0004D041
            acpi: DSDT: device RTC_ _HID 000BD041
            acpi: DSDT: device FDC0 _HID 0007D041
            acpi: DSDT: device FLPA without _HID
            acpi: DSDT: device HPET _HID 0301D041
            acpi: DSDT: device FWCF _HID QEMU0002
            acpi: PM1a control reads 00000001
            acpi: PM timer: 0.1 s in N reads, each within 24 bits, none behind the last

            """, "\(r.stdout)")
        #expect(r.stderr == "")
        #expect(r.status == 0)
        // --no-hpet: the RSDT names no HPET table, the DSDT no HPET device (0x35 bytes
        // fewer), so the MADT sits 0x30 lower.
        let noHPET = try VMMProcess.run(["run", VMMProcess.guest("acpi.elf"), "--vcpus", "3", "--no-hpet", "--max-seconds", "60"])
        func lines(_ out: String) -> [String] {
            out.split(separator: "\n").map { $0.hasPrefix("acpi: PM timer: 0.1 s in ") ? "acpi: PM timer: 0.1 s in N" + $0.dropFirst(33) : String($0) }
        }
        let expected = lines(r.stdout).filter { !$0.contains("HPET") }
            .map { $0 == "acpi: table RSDT at 000F2040, length 00000030" ? "acpi: table RSDT at 000F2040, length 0000002C" : $0 }
            .map { $0.replacingOccurrences(of: "APIC at 000F2360", with: "APIC at 000F2320").replacingOccurrences(of: "length 00000212", with: "length 000001DD") }
        #expect(lines(noHPET.stdout) == expected, "\(noHPET.stdout)")
        #expect(noHPET.status == 0)
        // --pvpanic: its device too, after fw_cfg's, as QEMU's QEMU0001.
        let pvpanic = try VMMProcess.run(["run", VMMProcess.guest("acpi.elf"), "--pvpanic", "--max-seconds", "60"])
        #expect(pvpanic.stdout.contains("acpi: DSDT: device FWCF _HID QEMU0002\nacpi: DSDT: device PEVT _HID QEMU0001\nacpi: PM1a"), "\(pvpanic.stdout)")
        #expect(pvpanic.status == 0)
        let none = try VMMProcess.run(["run", VMMProcess.guest("acpi.elf"), "--irqchip", "none", "--max-seconds", "60"])
        #expect(none.stdout == "acpi: no RSDP\n")
        #expect(none.status == 0)
    }

    @Test("255 processors, the most one-byte APIC IDs name: every checksum holds, every entry is counted, the ACPI tables fit before the BIOS area's end; 0 and 256 are refused")
    func bounds() throws {
        let firmware = try PCFirmware(processors: 255)
        let bytes = firmware.mpTable
        func u16(_ b: [UInt8], _ at: Int) -> Int { Int(b[at]) | Int(b[at + 1]) << 8 }
        func u32(_ b: [UInt8], _ at: Int) -> Int { u16(b, at) | u16(b, at + 2) << 16 }
        #expect(Array(bytes[0..<4]) == Array("_MP_".utf8))
        #expect(bytes[0..<16].reduce(0, &+) == 0)
        let table = bytes[16...]
        #expect(Array(table.prefix(4)) == Array("PCMP".utf8))
        #expect(u16(bytes, 16 + 4) == table.count)
        #expect(table.reduce(0, &+) == 0)
        #expect(u16(bytes, 16 + 34) == 255 + 2 + 15 + 2) // no entry for ISA IRQ 2
        #expect(table.count == 44 + 255 * 20 + 8 + 8 + 15 * 8 + 2 * 8)
        // The last processor entry: APIC ID 254, enabled, not the bootstrap processor.
        let last = 16 + 44 + 254 * 20
        #expect(Array(bytes[last..<last + 4]) == [0, 254, 0x14, 1])
        #expect(PCFirmware.mpTableAddress + UInt64(bytes.count) <= PCFirmware.acpiAddress)

        let acpi = firmware.acpiTables
        #expect(PCFirmware.acpiAddress + UInt64(acpi.count) <= PCFirmware.smbiosAddress)
        // SMBIOS with 255 processors and the most RAM (3 GiB low, the rest at 4 GiB): both
        // checksums hold, and the table ends below 1 MiB.
        let smbios = firmware.smbiosTables(lowRAM: 3 << 30, highRAM: 1 << 40)
        #expect(PCFirmware.smbiosAddress + UInt64(smbios.count) <= 0x10_0000)
        #expect(smbios[0..<0x1f].reduce(0, &+) == 0 && smbios[0x10..<0x1f].reduce(0, &+) == 0)
        #expect(u16(smbios, 0x16) == smbios.count - 0x20 && u16(smbios, 0x1c) == 255 + 9)
        #expect(acpi[0..<20].reduce(0, &+) == 0)
        // Every table the RSDT names, and the DSDT, sums to 0 over its length; the
        // MADT holds 255 local APIC entries.
        let base = Int(PCFirmware.acpiAddress)
        let rsdt = u32(acpi, 16) - base
        var tables = (0..<(u32(acpi, rsdt + 4) - 36) / 4).map { u32(acpi, rsdt + 36 + 4 * $0) - base }
        tables.append(u32(acpi, tables[0] + 40) - base) // the FADT's DSDT
        for t in [rsdt] + tables {
            #expect(acpi[t..<t + u32(acpi, t + 4)].reduce(0, &+) == 0)
        }
        #expect(tables.map { String(decoding: acpi[$0..<$0 + 4], as: UTF8.self) } == ["FACP", "APIC", "HPET", "DSDT"])
        #expect(u32(acpi, tables[1] + 4) == 44 + 255 * 8 + 12 + 2 * 10 + 6)
        // The HPET table after the MADT, whatever its size, and the last thing in the blob.
        #expect(tables[2] >= tables[1] + u32(acpi, tables[1] + 4) && tables[2] + 56 == acpi.count)
        #expect(u32(acpi, tables[2] + 4) == 56 && u32(acpi, tables[2] + 36) == 0x8086_a201 && u32(acpi, tables[2] + 44) == 0xfed0_0000)
        // Without the HPET (--no-hpet): the RSDT names the FADT and the MADT, and the blob ends with the MADT.
        let plain = try PCFirmware(processors: 255, hpet: false).acpiTables
        #expect(u32(plain, rsdt + 4) == 36 + 8 && plain.count == u32(plain, rsdt + 36 + 4) - base + u32(acpi, tables[1] + 4))
        #expect(plain[rsdt..<rsdt + 44].reduce(0, &+) == 0)
        for n in [0, 256, -1] {
            #expect(throws: LoaderError(.request, "the firmware tables describe 1 to 255 processors, not \(n)")) { try PCFirmware(processors: n) }
        }
    }

    @Test("an image in the BIOS area keeps its bytes: no table over it, and none in RAM that ends inside them")
    func imageInBIOSArea() throws {
        let firmware = try PCFirmware(processors: 2)
        let (vm, loader) = try HostileInputTests.vm(ram: 2 << 20, firmware: firmware)
        defer { vm.close() }
        let image = [UInt8](repeating: 0xf4, count: 0x100)
        _ = try loader.load(image, ImageRequest(path: "flat", loadAddress: 0xf0080))
        #expect(try vm.memory.readBytes(0xf0080, count: 0x100) == image)
        #expect(try vm.memory.readBytes(PCFirmware.mpTableAddress, count: 4) == [0, 0, 0, 0])
        #expect(try vm.memory.read(0x413, as: UInt16.self) == 0)
        #expect(try vm.memory.read(0x463, as: UInt16.self) == 0)
        // Elsewhere the same loader writes both, and the BIOS data area as SeaBIOS leaves it:
        // COM1's port, the equipment word (floppy A, FPU, 80x25 colour, one serial port), the
        // video mode, columns, page size, CRT controller port, rows - 1, character height and
        // the floppy-present byte.
        _ = try loader.load(image, ImageRequest(path: "flat", loadAddress: 0x100000))
        #expect(try vm.memory.readBytes(PCFirmware.mpTableAddress, count: 4) == Array("_MP_".utf8))
        #expect(try vm.memory.read(0x413, as: UInt16.self) == 639)
        #expect(try [0x400, 0x410, 0x44a, 0x44c, 0x463, 0x485].map { try vm.memory.read($0, as: UInt16.self) }
            == [0x3f8, 0x0223, 80, 0x1000, 0x3d4, 16])
        #expect(try vm.memory.readBytes(0x449, count: 1) == [3])
        #expect(try vm.memory.readBytes(0x484, count: 1) == [24])
        #expect(try vm.memory.readBytes(0x48f, count: 1) == [7])
        // RAM that ends inside the table (as a library user may give): none of it.
        let (vm2, _) = try HostileInputTests.vm(ram: 2 << 20)
        defer { vm2.close() }
        _ = try ImageLoader(memory: vm2.memory, ramSize: 0xf0100, firmware: firmware).load(image, ImageRequest(path: "flat", loadAddress: 0x100000 - 0x20000))
        #expect(try vm2.memory.readBytes(PCFirmware.mpTableAddress, count: 4) == [0, 0, 0, 0])
        #expect(try vm2.memory.read(0x413, as: UInt16.self) == 0)
    }
}
