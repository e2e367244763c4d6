import Foundation
import Testing
import VMMKit
import VMMLoader

/// The Intel MP table a PC's BIOS leaves (SeaBIOS under QEMU): a kernel written for QEMU
/// (Examples/GuestImages/qemu/mptable.S) finds its processors, the I/O APIC and ISA
/// IRQ 0 in it, compares them with the hardware, starts the APs and takes the PIT's
/// interrupt by what it read; the loader's side with its bounds.
@Suite("MP table on real KVM", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct MPTableTests {
    @Test("a kernel for a PC reads the MP table, finds it true of the APICs, starts each AP by its ID and takes IRQ 0 on the pin it names")
    func guestUsesTable() throws {
        let r = try VMMProcess.run(["run", VMMProcess.guest("mptable.elf"), "--vcpus", "3", "--max-seconds", "60"])
        #expect(r.stdout == """
            bda: base memory KiB 0000027F, EBDA segment 00009FC0
            mp: floating pointer at 000F0000, table at 000F0010
            mp: entries 00000017, local APICs at FEE00000
            mp: processors 00000003, bootstrap APIC ID 00000000 version 00000014; its registers: ID 00000000 version 00000014
            mp: I/O APIC ID 00000000 version 00000011 at FEC00000; its registers: ID 00000000 version 00000011
            mp: ISA IRQ 0 on I/O APIC pin 00000000
            mp: started APIC ID 00000001
            mp: started APIC ID 00000002
            timer: ISA IRQ 0 arrived through pin 00000000

            """)
        #expect(r.stderr == "")
        #expect(r.status == 0)
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

    @Test("255 processors, the most one-byte APIC IDs name: both checksums hold, every entry is counted; 0 and 256 are refused")
    func bounds() throws {
        let bytes = try MPTable(processors: 255).bytes()
        func u16(_ at: Int) -> Int { Int(bytes[at]) | Int(bytes[at + 1]) << 8 }
        #expect(Array(bytes[0..<4]) == Array("_MP_".utf8))
        #expect(bytes[0..<16].reduce(0, &+) == 0)
        let table = bytes[16...]
        #expect(Array(table.prefix(4)) == Array("PCMP".utf8))
        #expect(u16(16 + 4) == table.count)
        #expect(table.reduce(0, &+) == 0)
        #expect(u16(16 + 34) == 255 + 2 + 16 + 2)
        #expect(table.count == 44 + 255 * 20 + 8 + 8 + 16 * 8 + 2 * 8)
        // The last processor entry: APIC ID 254, enabled, not the bootstrap processor.
        let last = 16 + 44 + 254 * 20
        #expect(Array(bytes[last..<last + 4]) == [0, 254, 0x14, 1])
        for n in [0, 256, -1] {
            #expect(throws: LoaderError(.request, "an MP table describes 1 to 255 processors, not \(n)")) { try MPTable(processors: n) }
        }
    }

    @Test("an image in the BIOS area keeps its bytes: no table over it, and none in RAM that ends below it")
    func imageInBIOSArea() throws {
        let vm = try KVM.open().createVM()
        defer { vm.close() }
        try vm.memory.addRegion(name: "ram", guestAddress: 0, size: 2 << 20)
        let table = try MPTable(processors: 2)
        let image = [UInt8](repeating: 0xf4, count: 0x100)
        let loader = ImageLoader(memory: vm.memory, ramSize: 2 << 20, mpTable: table)
        _ = try loader.load(image, ImageRequest(path: "flat", loadAddress: 0xf0080))
        #expect(try vm.memory.readBytes(0xf0080, count: 0x100) == image)
        #expect(try vm.memory.readBytes(MPTable.address, count: 4) == [0, 0, 0, 0])
        #expect(try vm.memory.read(0x413, as: UInt16.self) == 0)
        // Elsewhere the same loader writes both.
        _ = try loader.load(image, ImageRequest(path: "flat", loadAddress: 0x100000))
        #expect(try vm.memory.readBytes(MPTable.address, count: 4) == Array("_MP_".utf8))
        #expect(try vm.memory.read(0x413, as: UInt16.self) == 639)
        // RAM that ends inside the table (as a library user may give): none of it.
        let vm2 = try KVM.open().createVM()
        defer { vm2.close() }
        try vm2.memory.addRegion(name: "ram", guestAddress: 0, size: 2 << 20)
        _ = try ImageLoader(memory: vm2.memory, ramSize: 0xf0100, mpTable: table).load(image, ImageRequest(path: "flat", loadAddress: 0x100000 - 0x20000))
        #expect(try vm2.memory.readBytes(MPTable.address, count: 4) == [0, 0, 0, 0])
        #expect(try vm2.memory.read(0x413, as: UInt16.self) == 0)
    }
}
