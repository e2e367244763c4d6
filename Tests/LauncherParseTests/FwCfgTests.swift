@testable import Launcher
import Testing
import VMMKit

/// fw_cfg without a VM: `--fw-cfg`'s syntax (QEMU's `-fw_cfg`), the directory, the DMA
/// interface against guest memory with no KVM behind it (every transfer a guest can ask
/// for, hostile ones included), and the snapshot's `fw-cfg-files` blob. On real KVM:
/// `FwCfgGuestTests`.
@Suite("fw_cfg: --fw-cfg, the file directory, DMA and the files' snapshot blob")
struct FwCfgTests {
    typealias F = FwCfgFile

    static func refusal(_ text: String) -> String? {
        do { _ = try F.parse(text); return nil } catch { return error.why }
    }

    @Test("QEMU's -fw_cfg forms: a bare or name= name, file= or string=, ',,' a comma in a value")
    func specs() throws {
        #expect(try F.parse("opt/a,string=hi") == F.Spec(name: "opt/a", content: .string("hi")))
        #expect(try F.parse("name=opt/a,file=/tmp/x") == F.Spec(name: "opt/a", content: .file("/tmp/x")))
        #expect(try F.parse("string=a,,b,,,,c,name=opt/b") == F.Spec(name: "opt/b", content: .string("a,b,,c")))
        #expect(try F.parse("opt/c,file=/a=b") == F.Spec(name: "opt/c", content: .file("/a=b")))
        #expect(try F.parse("etc/not-ours,string=x").name == "etc/not-ours", "QEMU only warns about names outside opt/")
        #expect(try F.parse(String(repeating: "n", count: 55) + ",string=x").name.count == 55)
    }

    @Test("a spec that is not one file of one name is refused in one line saying why")
    func refusedSpecs() {
        let cases: [(String, String)] = [
            ("", "no name (give NAME,file=PATH or NAME,string=TEXT)"),
            ("string=x", "no name (give NAME,file=PATH or NAME,string=TEXT)"),
            ("name=,string=x", "no name (give NAME,file=PATH or NAME,string=TEXT)"),
            ("opt/a", "give exactly one of 'file' and 'string'"),
            ("opt/a,file=/x,string=y", "give exactly one of 'file' and 'string'"),
            ("opt/a,string=", "an empty 'string' (QEMU refuses it too)"),
            ("opt/a,file=", "an empty 'file'"),
            ("opt/a,string=x,string=y", "'string' given twice"),
            ("opt/a,name=opt/b,string=y", "'name' given twice"),
            ("opt/a,gen_id=g", "'gen_id' is not supported (no objects generate fw_cfg data here)"),
            ("opt/a,size=3", "unknown key 'size' (known: name, file, string)"),
            ("opt/a,string=x,", "'' is not key=value"),
            ("opt/a,oops,string=x", "'oops' is not key=value"),
            (String(repeating: "n", count: 56) + ",string=x", "the name '\(String(repeating: "n", count: 56))' is not 1 to 55 bytes long"),
            ("opt/a b,string=x", "the name 'opt/a b' is not printable ASCII without spaces"),
            ("opt/é,string=x", "the name 'opt/é' is not printable ASCII without spaces"),
            ("etc/e820,string=x", "the name 'etc/e820' is the machine's own"),
        ]
        for (text, why) in cases { #expect(Self.refusal(text) == why, "\(text)") }
        #expect(throws: F.Refusal(why: "the name 'opt/a' given twice")) { try F.check(names: ["opt/a", "opt/b", "opt/a"], sizes: []) }
        #expect(throws: F.Refusal(why: "17 files; at most 16")) { try F.check(names: (0..<17).map { "opt/\($0)" }, sizes: []) }
        #expect(throws: F.Refusal(why: "more than 8388608 bytes in all")) { try F.check(names: ["opt/a", "opt/b"], sizes: [F.maxTotalSize, 1]) }
    }

    /// A machine of 64 KiB of RAM (and a read-only page at 0x10000) with `files`.
    static func machine(_ files: [FwCfgFile] = [F(name: "opt/b", bytes: Array("bravo".utf8)), F(name: "bootorder", bytes: [1, 2])])
        throws -> (FwCfg, GuestMemory) {
        let memory = GuestMemory.detached()
        try memory.addRegion(name: "ram", guestAddress: 0, size: 0x10000)
        try memory.addRegion(name: "rom", guestAddress: 0x10000, size: 0x1000, readOnly: true)
        return (FwCfg(cpus: 2, ramSize: 64 << 20, files: files, memory: memory), memory)
    }

    /// One port access: `value` written, or what a read gave.
    @discardableResult
    static func io(_ f: FwCfg, _ port: UInt16, size: Int = 4, write value: UInt32? = nil) -> UInt32 {
        var bytes = [UInt8](repeating: 0, count: 4)
        return bytes.withUnsafeMutableBytes { buf in
            let io = PIOAccess.synthetic(port: port, size: size, isWrite: value != nil, data: UnsafeMutableRawBufferPointer(rebasing: buf[0..<size]))
            if let value { io.value = value }
            f.access(io)
            return io.value
        }
    }

    /// The bytes of the selected item through the data port.
    static func read(_ f: FwCfg, _ selector: UInt16, _ count: Int) -> [UInt8] {
        io(f, FwCfg.selectorPort, size: 2, write: UInt32(selector))
        return (0..<count).map { _ in UInt8(io(f, FwCfg.dataPort, size: 1)) }
    }

    /// Writes a descriptor at `at` and starts it through the two halves of the register.
    static func dma(_ f: FwCfg, _ memory: GuestMemory, at: UInt64 = 0x100, control: UInt32, length: UInt32, address: UInt64) throws -> UInt32 {
        try memory.write(at, control.bigEndian)
        try memory.write(at + 4, length.bigEndian)
        try memory.write(at + 8, address.bigEndian)
        io(f, FwCfg.dmaPort, write: UInt32(truncatingIfNeeded: at >> 32).byteSwapped)
        io(f, FwCfg.dmaPort + 4, write: UInt32(truncatingIfNeeded: at).byteSwapped)
        return UInt32(bigEndian: try memory.read(at, as: UInt32.self))
    }

    @Test("etc/e820 is QEMU's on KVM: the identity map and TSS reserved first, then RAM below the hole and from 4 GiB")
    func e820() throws {
        func entry(_ base: UInt64, _ length: UInt64, _ type: UInt32) -> [UInt8] {
            withUnsafeBytes(of: base.littleEndian) { Array($0) } + withUnsafeBytes(of: length.littleEndian) { Array($0) }
                + withUnsafeBytes(of: type.littleEndian) { Array($0) }
        }
        let identity = entry(0xfeff_c000, 0x4000, 2)
        #expect(Self.read(FwCfg(cpus: 1, ramSize: 5 << 30, lowRAM: 3 << 30), 0x20, 60) == identity + entry(0, 3 << 30, 1) + entry(1 << 32, 2 << 30, 1))
        #expect(Self.read(FwCfg(cpus: 1, ramSize: 0xd000_0000), 0x20, 40) == identity + entry(0, 0xd000_0000, 1))
    }

    @Test("the directory lists etc/e820 and the user's files sorted by name from selector 0x20; FW_CFG_ID says DMA only with memory to transfer into")
    func directory() throws {
        let (f, _) = try Self.machine()
        #expect(Self.read(f, 0x01, 4) == [3, 0, 0, 0])
        #expect(Self.read(FwCfg(cpus: 1, ramSize: 1 << 20), 0x01, 4) == [1, 0, 0, 0])
        let dir = Self.read(f, 0x19, 4 + 3 * 64)
        #expect(dir[0..<4] == [0, 0, 0, 3])
        func entry(_ i: Int) -> (UInt32, UInt16, String) {
            let e = Array(dir[(4 + 64 * i)..<(4 + 64 * (i + 1))])
            let size = e[0..<4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            return (size, UInt16(e[4]) << 8 | UInt16(e[5]), String(decoding: e[8...].prefix { $0 != 0 }, as: UTF8.self))
        }
        #expect(entry(0) == (2, 0x20, "bootorder") && entry(1) == (40, 0x21, "etc/e820") && entry(2) == (5, 0x22, "opt/b"))
        #expect(Self.read(f, 0x22, 7) == Array("bravo".utf8) + [0, 0], "past the end: zeros")
        #expect(Self.read(f, 0x23, 2) == [0, 0], "no such item")
        // A rep outsw to the selector selects each value in turn (the last stays), from the
        // first byte; a rep insw reads 0 for each.
        var words: [UInt8] = [0x19, 0, 0x00, 0, 0x22, 0]
        words.withUnsafeMutableBytes { f.access(PIOAccess.synthetic(port: FwCfg.selectorPort, size: 2, count: 3, isWrite: true, data: $0)) }
        #expect((0..<5).map { _ in UInt8(Self.io(f, FwCfg.dataPort, size: 1)) } == Array("bravo".utf8))
        words.withUnsafeMutableBytes { f.access(PIOAccess.synthetic(port: FwCfg.selectorPort, size: 2, count: 3, isWrite: false, data: $0)) }
        #expect(words == [0, 0, 0, 0, 0, 0])
    }

    @Test("bit 15's x86 items as QEMU's fw_cfg_arch_create adds them: ACPI tables empty, IRQ 0 override 1 (IRQ 0 is I/O APIC pin 2, as QEMU's), the HPET's hpet_fw_config (count 0xff without one); neither SMBIOS entries nor the legacy e820 table")
    func archItems() throws {
        let with = FwCfg(cpus: 1, ramSize: 1 << 20, hpet: true), without = FwCfg(cpus: 1, ramSize: 1 << 20)
        // Count 1; block ID 0x8086a201 (3 timers, 64-bit, LegacyReplacement); 0xfed00000;
        // min_tick and page_prot 0; seven empty entries; then past the end.
        let entry: [UInt8] = [0x01, 0xa2, 0x86, 0x80, 0, 0, 0xd0, 0xfe, 0, 0, 0, 0, 0, 0, 0]
        #expect(Self.read(with, 0x8004, 122) == [1] + entry + [UInt8](repeating: 0, count: 7 * 15 + 1))
        #expect(Self.read(without, 0x8004, 122) == [0xff] + [UInt8](repeating: 0, count: 121))
        #expect(Self.read(with, 0xc004, 5) == [1] + entry[0..<4], "the write channel's bit masked off, as fw_cfg_select does")
        #expect(Self.read(with, 0x8002, 5) == [1, 0, 0, 0, 0])
        // FW_CFG_ACPI_TABLES is there but empty; 0x8001 and 0x8003 are no items.
        for (key, there) in [(UInt16(0x8000), true), (0x8001, false), (0x8003, false), (0x8005, false)] {
            #expect(Self.read(with, key, 4) == [0, 0, 0, 0])
            #expect(with.state.selector == (there ? key : nil), "\(hex(key))")
        }
    }

    @Test("port 0x510 as QEMU's fw_cfg_comb_mem_ops: only a 2-byte write selects, a byte read is the next data byte, other widths read 0; port 0x511 a byte wide")
    func selectorWidths() throws {
        let (f, _) = try Self.machine()
        Self.io(f, FwCfg.selectorPort, size: 2, write: 0x22) // opt/b: "bravo"
        Self.io(f, FwCfg.selectorPort, size: 1, write: 0x19) // a data write: ignored
        Self.io(f, FwCfg.selectorPort, size: 4, write: 0x19) // refused
        #expect(Self.io(f, FwCfg.selectorPort, size: 1) == 0x62, "b")
        #expect(Self.io(f, FwCfg.selectorPort, size: 2) == 0 && Self.io(f, FwCfg.selectorPort) == 0, "refused reads move nothing")
        #expect(Self.io(f, FwCfg.dataPort, size: 1) == 0x72, "r")
        #expect(Self.io(f, FwCfg.dataPort, size: 2) == 0xff61, "a byte of 0x511, then 0x512: no device's")
        #expect(Self.io(f, FwCfg.dataPort) == 0x51ff_ff76, "v, 0x512-0x513, then the DMA register's first byte")
        #expect(Self.io(f, FwCfg.dataPort, size: 1) == 0x6f && f.state.offset == 5)
        Self.io(f, FwCfg.dataPort, size: 2, write: 0x0019) // 0x511 is a byte wide: no select
        #expect(f.state.selector == 0x22)
        // QEMU's fw_cfg_select masks off bit 14 (the write channel): 0x4022 is opt/b, from
        // its start; bit 15 names the architecture's items (`archItems`), none at 0x8022.
        Self.io(f, FwCfg.selectorPort, size: 2, write: 0x4022)
        #expect(f.state.selector == 0x22 && Self.io(f, FwCfg.dataPort, size: 1) == 0x62)
        Self.io(f, FwCfg.selectorPort, size: 2, write: 0x8022)
        #expect(f.state.selector == nil && Self.io(f, FwCfg.dataPort, size: 1) == 0)
        #expect(FwCfg.pieces(0x511, size: 4).map { [$0.0, UInt16($0.1)] } == [[0x511, 1], [0x512, 2], [0x514, 1]])
        #expect(FwCfg.pieces(0x516, size: 4).map { [$0.0, UInt16($0.1)] } == [[0x516, 2], [0x518, 2]])
    }

    @Test("DMA: select, read (zeros past the end), skip, one offset shared with the data port; the control word written back 0")
    func transfers() throws {
        let (f, m) = try Self.machine()
        #expect(Self.io(f, FwCfg.dmaPort) == UInt32(littleEndian: 0x554d_4551), "'QEMU' in port order")
        #expect(Self.io(f, FwCfg.dmaPort + 4) == UInt32(littleEndian: 0x4746_4320), "' CFG'")
        try m.writeBytes(0x1000, [UInt8](repeating: 0xee, count: 16))
        #expect(try Self.dma(f, m, control: 0x22 << 16 | 0x08 | 0x02, length: 3, address: 0x1000) == 0)
        #expect(try m.readBytes(0x1000, count: 4) == Array("bra".utf8) + [0xee])
        #expect(try Self.dma(f, m, control: 0x02, length: 4, address: 0x1000) == 0, "on from offset 3, past the end")
        #expect(try m.readBytes(0x1000, count: 5) == Array("vo".utf8) + [0, 0, 0xee])
        #expect(try Self.dma(f, m, control: 0x22 << 16 | 0x08 | 0x04, length: 1, address: 0xdead_0000) == 0, "a skip touches no memory")
        #expect(UInt8(Self.io(f, FwCfg.dataPort, size: 1)) == UInt8(ascii: "r"), "the port goes on where DMA left off")
        #expect(try Self.dma(f, m, control: 0x4022 << 16 | 0x08 | 0x02, length: 2, address: 0x1000) == 0, "bit 14 masked off, as the port's select")
        #expect(try m.readBytes(0x1000, count: 2) == Array("br".utf8) && f.state.selector == 0x22)
        _ = try Self.dma(f, m, control: 0x22 << 16 | 0x08 | 0x04, length: 2, address: 0) // back to offset 2
        #expect(try Self.dma(f, m, control: 0x02, length: 1, address: 0x1000) == 0)
        #expect(try m.read(0x1000, as: UInt8.self) == UInt8(ascii: "a"))
        #expect(try Self.dma(f, m, control: 0x20 << 16 | 0x08, length: 100, address: 0) == 0, "select alone: no transfer")
        #expect(f.state.selector == 0x20 && f.state.offset == 0)
        #expect(try Self.dma(f, m, control: 0, length: 0, address: 0) == 0)
    }

    @Test("DMA a guest gets wrong: a write, memory outside RAM, across its end or read-only set the error bit; a descriptor outside RAM does nothing; odd accesses read all-ones")
    func hostile() throws {
        let (f, m) = try Self.machine()
        #expect(try Self.dma(f, m, control: 0x22 << 16 | 0x08 | 0x10, length: 2, address: 0x1000) == 1, "no item is writable")
        #expect(try Self.dma(f, m, control: 0x12, length: 2, address: 0x1000) == 0, "read wins over write")
        for address: UInt64 in [0x20000, 0xffff, 0x10000, ~0, 0xffff_ffff_ffff_fffe] {
            #expect(try Self.dma(f, m, control: 0x22 << 16 | 0x08 | 0x02, length: 2, address: address) == 1, "\(address)")
        }
        #expect(try Self.dma(f, m, control: 0x19 << 16 | 0x08 | 0x02, length: .max, address: 0x2000) == 1, "4 GiB into 64 KiB")
        #expect(try m.read(0x2000, as: UInt32.self) == UInt32(bigEndian: 3), "what fit before the end was copied")
        #expect(try m.read(0x10000, as: UInt8.self) == 0, "ROM untouched")
        // A descriptor in ROM is read and run, but its answer is not written there.
        #expect(try Self.dma(f, m, control: 0x22 << 16 | 0x08 | 0x02, length: 2, address: 0x1000) == 0)
        try m.writeBytes(0x1000, [0, 0])
        let rom = try m.hostPointer(0x10000, length: 16)
        rom.storeBytes(of: (UInt32(0x22) << 16 | 0x0a).bigEndian, as: UInt32.self)
        (rom + 4).storeBytes(of: UInt32(2).bigEndian, as: UInt32.self)
        (rom + 8).storeBytes(of: UInt64(0x1000).bigEndian, as: UInt64.self)
        Self.io(f, FwCfg.dmaPort + 4, write: UInt32(0x10000).byteSwapped)
        #expect(try m.readBytes(0x1000, count: 2) == Array("br".utf8))
        #expect(rom.load(as: UInt32.self) == (UInt32(0x22) << 16 | 0x0a).bigEndian, "the control word in ROM unchanged")
        // A descriptor that is not in RAM (or crosses its end): nothing read, nothing written.
        let before = f.state
        for at: UInt64 in [0x20000, 0xfff8, 0x1_0000_0000] {
            Self.io(f, FwCfg.dmaPort, write: UInt32(truncatingIfNeeded: at >> 32).byteSwapped)
            #expect(f.state.dmaHigh == UInt32(at >> 32))
            Self.io(f, FwCfg.dmaPort + 4, write: UInt32(truncatingIfNeeded: at).byteSwapped)
            #expect(f.state == before, "\(at)")
        }
        // Every read gives the signature's bytes at its ports, as QEMU's fw_cfg_dma_mem_read
        // (past 0x51b no device's, all-ones); only 4-byte writes to either half take.
        #expect(Self.io(f, FwCfg.dmaPort, size: 2) == 0x4551 && Self.io(f, FwCfg.dmaPort + 2) == 0x4320_554d)
        #expect(Self.io(f, FwCfg.dmaPort + 7, size: 1) == 0x47 && Self.io(f, FwCfg.dmaPort + 6) == 0xffff_4746)
        Self.io(f, FwCfg.dmaPort + 4, size: 2, write: 0x0001)
        Self.io(f, FwCfg.dmaPort + 1, write: 0x0100_0000)
        #expect(f.state == before)
        // Without guest memory (no VM) every transfer fails quietly.
        let bare = FwCfg(cpus: 1, ramSize: 1 << 20)
        Self.io(bare, FwCfg.dmaPort + 4, write: UInt32(0x100).byteSwapped)
        #expect(bare.state == .init(selector: nil, offset: 0))
    }

    @Test("a snapshot's state and files read back; a restore of an item the machine lacks or past its end is refused")
    func snapshotState() throws {
        let (f, m) = try Self.machine()
        _ = Self.read(f, 0x22, 2)
        Self.io(f, FwCfg.dmaPort, write: UInt32(7).byteSwapped)
        let saved = f.state
        #expect(saved == .init(selector: 0x22, offset: 2, dmaHigh: 7))
        let (g, _) = try Self.machine()
        try g.restore(saved)
        #expect(g.state == saved)
        #expect(Self.read(g, 0x22, 3) == Array("bra".utf8), "a selection restarts the item")
        #expect(throws: LauncherError.self) { try FwCfg(cpus: 1, ramSize: 1 << 20).restore(saved) }
        #expect(throws: LauncherError.self) { try g.restore(.init(selector: 0x22, offset: 6)) }
        _ = m
        let files = f.files
        #expect(try F.decode(F.encode(files), version: 1) == files)
        #expect(try F.decode(F.encode([]), version: 1) == [])
        let newline = F(name: "opt/n", bytes: [0x0a, 0x0a, 0, 0xff])
        #expect(try F.decode(F.encode([newline]), version: 1) == [newline])
    }

    @Test("the config keys fwCfg, uuid and pvpanic read as their flags; a bad value names the file and the key")
    func configKeys() throws {
        func parse(_ json: String) -> Result<LaunchOptions, LauncherError> {
            Result { () throws(LauncherError) in try LaunchOptions.parse(Array(json.utf8), path: "vm.json") }
        }
        let o = try parse(#"{"fwCfg": ["opt/a,string=x,,y"], "uuid": "12345678-9ABC-def0-1122-334455667788", "pvpanic": true}"#).get()
        #expect(o.fwCfg == [F.Spec(name: "opt/a", content: .string("x,y"))] && o.pvpanic)
        #expect(o.uuid.text == "12345678-9abc-def0-1122-334455667788" && o.uuid.bytes.first == 0x12 && o.uuid.bytes.last == 0x88)
        #expect(try parse("{}").get().uuid == .zero)
        let bad: [(String, String)] = [
            (#"{"uuid": "12345678"}"#, "vm.json: 'uuid' must be 8-4-4-4-12 hex digits, not '12345678'"),
            (#"{"uuid": 5}"#, "vm.json: 'uuid' must be a string"),
            (#"{"pvpanic": "yes"}"#, "vm.json: 'pvpanic' must be true or false"),
            (#"{"fwCfg": ["opt/a,string=x", "opt/a,string=y"]}"#, "vm.json: 'fwCfg': the name 'opt/a' given twice"),
        ]
        for (json, message) in bad {
            guard case let .failure(error) = parse(json) else { Issue.record("\(json) parsed"); continue }
            #expect(error.status == .config && error.message == message, "\(json): \(error.message)")
        }
    }

    @Test("--pvpanic's etc/pvpanic-port, as QEMU's pvpanic_isa_realizefn: the port, 2 bytes little-endian, after the user's files, in the directory and a snapshot's blob")
    func pvpanicPort() throws {
        #expect(PVPanic.fwCfgFile == F(name: "etc/pvpanic-port", bytes: [0x05, 0x05]))
        let user = (0..<F.maxCount).map { F.Spec(name: "opt/\($0)", content: .string("x")) }
        let files = try F.load(user, machine: [PVPanic.fwCfgFile]) { $0.name }
        #expect(files.count == 17 && files.last == PVPanic.fwCfgFile)
        #expect(try F.decode(F.encode(files), version: 1) == files, "16 of the user's and the machine's read back")
        let f = FwCfg(cpus: 1, ramSize: 1 << 20, files: [PVPanic.fwCfgFile])
        let dir = Self.read(f, 0x19, 4 + 2 * 64)
        #expect(dir[0..<4] == [0, 0, 0, 2] && dir[68..<74] == [0, 0, 0, 2, 0, 0x21] && dir[76..<92] == ArraySlice("etc/pvpanic-port".utf8))
        #expect(Self.read(f, 0x21, 2) == [0x05, 0x05])
        // It counts in the 8 MiB: a user's file of all of it no longer fits.
        let big = [F.Spec(name: "opt/big", content: .string(String(repeating: "x", count: F.maxTotalSize)))]
        #expect(throws: LauncherError.self) { try F.load(big, machine: [PVPanic.fwCfgFile]) { $0.name } }
    }

    @Test("a damaged fw-cfg-files blob is refused in one line saying why")
    func hostileBlobs() {
        let cases: [(String, String)] = [
            ("", "not a 'vmm-fw-cfg-files 1' blob"),
            ("vmm-fw-cfg-files 2\nend\n", "not a 'vmm-fw-cfg-files 1' blob"),
            ("vmm-fw-cfg-files 1\n", "the line at byte 19 has no end or is longer than 100 bytes"),
            ("vmm-fw-cfg-files 1\nend\nx", "bytes after 'end'"),
            ("vmm-fw-cfg-files 1\nfile opt/a 3\nab\nend\n", "'opt/a': its 3 bytes are cut or not followed by a newline"),
            ("vmm-fw-cfg-files 1\nfile opt/a 3\nabcd\nend\n", "'opt/a': its 3 bytes are cut or not followed by a newline"),
            ("vmm-fw-cfg-files 1\nfile opt/a 30\nabc\nend\n", "'opt/a': its 30 bytes are cut or not followed by a newline"),
            ("vmm-fw-cfg-files 1\nfile opt/a +1\na\nend\n", "line 'file opt/a +1' is not 'file NAME SIZE'"),
            ("vmm-fw-cfg-files 1\nfile opt/a 8388609\na\nend\n", "line 'file opt/a 8388609' is not 'file NAME SIZE'"),
            ("vmm-fw-cfg-files 1\nfile opt/a 99999999999\na\nend\n", "line 'file opt/a 99999999999' is not 'file NAME SIZE'"),
            ("vmm-fw-cfg-files 1\nfile opt/a  1\na\nend\n", "line 'file opt/a  1' is not 'file NAME SIZE'"),
            ("vmm-fw-cfg-files 1\nfile etc/e820 1\na\nend\n", "the name 'etc/e820' is the machine's own"),
            ("vmm-fw-cfg-files 1\nfile opt/a 1\na\nfile opt/a 1\nb\nend\n", "the name 'opt/a' given twice"),
            ("vmm-fw-cfg-files 1\nfile " + String(repeating: "x", count: 100) + " 1\na\nend\n", "the line at byte 19 has no end or is longer than 100 bytes"),
            ("vmm-fw-cfg-files 1\n" + (0..<18).map { "file opt/\($0) 1\na\n" }.joined() + "end\n", "more than 17 files"),
        ]
        for (text, why) in cases {
            #expect(throws: F.Refusal(why: why), "\(text.debugDescription)") { try F.decode(Array(text.utf8), version: 1) }
        }
        #expect(throws: F.Refusal(why: "the line at byte 19 is not UTF-8")) { try F.decode(Array("vmm-fw-cfg-files 1\n".utf8) + [0xff, 0x0a], version: 1) }
        #expect(throws: F.Refusal(why: "version 2; this vmm reads version 1")) { try F.decode(F.encode([]), version: 2) }
    }
}
