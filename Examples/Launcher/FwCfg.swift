import Glibc
import VMMKit

/// QEMU's fw_cfg on its x86 ports: a 16-bit selector written to port 0x510, the item's
/// bytes read one at a time from port 0x511, and the DMA interface's address register
/// at ports 0x514-0x51b (`FwCfg+DMA`). Items: the signature, the interfaces (traditional
/// and DMA), the machine's UUID, RAM size, CPU counts, and a file directory of "etc/e820" (the RAM ranges)
/// and the user's files (`--fw-cfg`, `FwCfgFile`), sorted by name as QEMU sorts them,
/// at selectors 0x20 on; and the x86 items of bit 15 QEMU's `pc` has (`ArchKey`). Enough
/// for guests that ask QEMU for their CPUs, RAM, HPET or an `opt/` file to work unchanged.
final class FwCfg: @unchecked Sendable {
    static let selectorPort: UInt16 = 0x510
    static let dataPort: UInt16 = 0x511
    enum Key: UInt16 { case signature = 0x00, id = 0x01, uuid = 0x02, ramSize = 0x03, cpuCount = 0x05, maxCPUs = 0x0f, fileDirectory = 0x19 }
    /// FW_CFG_FILE_FIRST: the first file's selector.
    static let firstFile: UInt16 = 0x20
    /// The FW_CFG_ARCH_LOCAL (bit 15) items QEMU's `fw_cfg_arch_create` (hw/i386/fw_cfg.c)
    /// adds for `pc`: FW_CFG_ACPI_TABLES (0x8000), FW_CFG_IRQ0_OVERRIDE (0x8002) and
    /// FW_CFG_HPET (0x8004). Not there, as not in QEMU's: FW_CFG_SMBIOS_ENTRIES (0x8001;
    /// `fw_cfg_build_smbios` adds it only for legacy machine types, `smbios_get_table_legacy`)
    /// and FW_CFG_E820_TABLE (0x8003; QEMU dropped its legacy reservations table for
    /// "etc/e820": hw/i386/e820_memory_layout.c keeps only that).
    enum ArchKey: UInt16 { case acpiTables = 0x8000, irq0Override = 0x8002, hpet = 0x8004 }

    /// Items searched in order. Not a `[UInt16: [UInt8]]`: a first dictionary of those
    /// types makes the runtime scan every loaded image's conformance records at start-up
    /// (~0.26 million instructions, callgrind).
    private var items: [(selector: UInt16, bytes: [UInt8])] = []
    /// The user's files, as given (a snapshot keeps them: `FwCfgFile.encode`).
    let files: [FwCfgFile]
    /// Where DMA transfers read and write; nil: no DMA (FW_CFG_ID says so, and a transfer
    /// does nothing: there is no descriptor to read or answer).
    let memory: GuestMemory?
    // Guarded by `lock`: the selected item (nil: none, or one fw_cfg does not have), its
    // bytes and the next one to read (at most their count: reads past the end are zeros),
    // and the DMA address's high half until the low half starts a transfer.
    var selector: UInt16?
    var current: [UInt8] = []
    var offset = 0
    var dmaHigh: UInt32 = 0
    private let lock = Lock(())

    /// `ramSize` is all RAM (QEMU's FW_CFG_RAM_SIZE); `lowRAM` of it lies below the MMIO
    /// hole and the rest from 4 GiB up, as the "etc/e820" file says. `files` were checked
    /// (`FwCfgFile.check`): unique names, none the machine's own. `hpet`: the machine
    /// has the HPET at `HPETState.base` (FW_CFG_HPET describes it).
    init(cpus: Int, ramSize: UInt64, lowRAM: UInt64? = nil, files: [FwCfgFile] = [], memory: GuestMemory? = nil,
         uuid: [UInt8] = [UInt8](repeating: 0, count: 16), hpet: Bool = false) {
        self.files = files
        self.memory = memory
        add(Key.signature.rawValue, Array("QEMU".utf8))
        add(Key.id.rawValue, le(UInt32(memory == nil ? 1 : 3))) // bit 0 traditional, bit 1 DMA
        add(Key.uuid.rawValue, uuid) // RFC 4122 order, as QEMU's
        add(Key.ramSize.rawValue, le(ramSize))
        add(Key.cpuCount.rawValue, le(UInt16(cpus)))
        add(Key.maxCPUs.rawValue, le(UInt16(cpus)))
        // QEMU's `acpi_tables`: only what -acpitable adds, so empty.
        add(ArchKey.acpiTables.rawValue, [])
        // 1, as QEMU's pc says: IRQ 0 reaches I/O APIC pin 2 (`VirtualMachine.pcGSIRouting`,
        // as QEMU's KVM routing) and the MP table and MADT say so; SeaBIOS reads it as
        // "etc/irq0-override" to write those tables that way.
        add(ArchKey.irq0Override.rawValue, le(UInt32(1)))
        add(ArchKey.hpet.rawValue, Self.hpetConfig(present: hpet))
        // "etc/e820" as QEMU's on KVM: 20-byte packed entries (address, length, type),
        // little-endian: first the KVM identity map and TSS (type 2, reserved: QEMU's KVM
        // setup adds it before the board adds RAM), then the RAM ranges (type 1).
        let low = lowRAM ?? ramSize
        var e820 = le(VirtualMachine.identityMapAddress) + le(VirtualMachine.identityMapSize) + le(UInt32(2))
        e820 += le(UInt64(0)) + le(low) + le(UInt32(1))
        if ramSize > low { e820 += le(UInt64(1) << 32) + le(ramSize - low) + le(UInt32(1)) }
        // The directory, big-endian: a count, then per file its size, selector, two
        // reserved bytes and a NUL-padded 56-byte name.
        let all = ([FwCfgFile(name: "etc/e820", bytes: e820)] + files).sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
        var directory = be(UInt32(all.count))
        for (index, file) in all.enumerated() {
            let selector = Self.firstFile + UInt16(index)
            add(selector, file.bytes)
            let name = Array(file.name.utf8)
            directory += be(UInt32(file.bytes.count)) + be(selector) + [0, 0] + name + [UInt8](repeating: 0, count: 56 - name.count)
        }
        add(Key.fileDirectory.rawValue, directory)
    }

    private func add(_ selector: UInt16, _ bytes: [UInt8]) { items.append((selector, bytes)) }

    /// FW_CFG_HPET: QEMU's packed `struct hpet_fw_config` (include/hw/timer/hpet.h), a
    /// count and 8 `hpet_fw_entry`s of 15 bytes (event timer block ID, address, min_tick,
    /// page_prot), little-endian. hw/timer/hpet.c's `hpet_realize` counts the HPETs (0xff,
    /// the initial value, when there is none: QEMU adds the item all the same) and
    /// `hpet_reset` gives each its block ID (the capabilities' low half) and address;
    /// min_tick and page_prot stay 0.
    static func hpetConfig(present: Bool) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 1 + 8 * 15)
        guard present else {
            bytes[0] = 0xff
            return bytes
        }
        bytes[0] = 1
        bytes.replaceSubrange(1..<5, with: le(UInt32(truncatingIfNeeded: HPETState.capabilities)))
        bytes.replaceSubrange(5..<13, with: le(HPETState.base))
        return bytes
    }

    func register(on dispatcher: ExitDispatcher) throws(VMMError) {
        try dispatcher.registerPIO(port: Self.selectorPort, count: 2, owner: "fw_cfg") { [self] io, _ in
            access(io)
            return .handled
        }
        try dispatcher.registerPIO(port: Self.dmaPort, count: 8, owner: "fw_cfg DMA") { [self] io, _ in
            access(io)
            return .handled
        }
    }

    /// One guest access to any of its ports (0x510-0x511, 0x514-0x51b), each element cut
    /// into the accesses QEMU's memory core makes of it (`pieces`) and each of those
    /// answered as QEMU's `fw_cfg_comb_mem_ops` (0x510-0x511) and `fw_cfg_dma_mem_ops`
    /// (0x514-0x51b) answer it: on 0x510-0x511 a byte read is the next data byte and a
    /// byte write is ignored (writes went away in QEMU 2.4), a 2-byte write selects (a
    /// `rep outsw` each value in turn, the last staying), any other access is one QEMU
    /// refuses (`fw_cfg_comb_valid`: reads 0, writes nothing); the DMA register reads its
    /// "QEMU CFG" signature byte by byte (`fw_cfg_dma_mem_read`) and takes 4-byte writes
    /// to either half (`FwCfg+DMA`). Ports 0x512-0x513, and past 0x51b, are no device's: all-ones.
    func access(_ io: PIOAccess) {
        lock.withLock { _ in
            for i in 0..<io.count {
                var at = i * io.size
                for (port, size) in Self.pieces(io.port, size: io.size) {
                    let bytes = UnsafeMutableRawBufferPointer(rebasing: io.data[at..<(at + size)])
                    if io.isWrite { write(port, bytes) } else { read(port, into: bytes) }
                    at += size
                }
            }
        }
    }

    /// The accesses QEMU's `flatview_read_continue`/`memory_access_size` cut a port access
    /// into: from `port` on, each as wide as what is left but at most 4 bytes (8 in the DMA
    /// register) and no wider than its offset's alignment in its region (0x510-0x511,
    /// 0x514-0x51b, or port space for the rest); not cut at a region's end.
    static func pieces(_ port: UInt16, size: Int) -> [(UInt16, Int)] {
        var out: [(UInt16, Int)] = []
        var at = Int(port), left = size
        while left > 0 {
            let start = (0x510..<0x512).contains(at) ? 0x510 : (0x514..<0x51c).contains(at) ? 0x514 : 0
            var n = min(left, start == 0x514 ? 8 : 4)
            let offset = at - start
            if offset != 0 { n = min(n, offset & -offset) }
            while n & (n - 1) != 0 { n &= n - 1 } // a power of two, as `pow2floor`
            out.append((UInt16(truncatingIfNeeded: at), n))
            at += n
            left -= n
        }
        return out
    }

    /// One access `pieces` made (under lock).
    private func read(_ port: UInt16, into bytes: UnsafeMutableRawBufferPointer) {
        switch port {
        case Self.selectorPort...Self.dataPort:
            if bytes.count == 1, offset < current.count {
                bytes[0] = current[offset]
                offset += 1
            } else {
                for i in bytes.indices { bytes[i] = 0 } // past the end; or a refused width
            }
        case Self.dmaPort..<(Self.dmaPort + 8):
            let at = Int(port - Self.dmaPort)
            for i in bytes.indices { bytes[i] = Self.dmaSignature[at + i] }
        default:
            for i in bytes.indices { bytes[i] = 0xff }
        }
    }

    private func write(_ port: UInt16, _ bytes: UnsafeMutableRawBufferPointer) {
        let value = bytes.reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) } // little-endian, at most 4 bytes
        switch port {
        case Self.selectorPort where bytes.count == 2: select(UInt16(truncatingIfNeeded: value))
        case Self.dmaPort, Self.dmaPort + 4: if bytes.count == 4 { dmaWrite(high: port == Self.dmaPort, value) }
        default: break
        }
    }

    /// FW_CFG_WRITE_CHANNEL: a key's bit 14, which QEMU's `fw_cfg_select` masks off with
    /// FW_CFG_ENTRY_MASK before it looks the item up, so 0x4019 selects the directory.
    /// Bit 15 (FW_CFG_ARCH_LOCAL) stays: it picks the architecture's own items (`ArchKey`).
    static let writeChannel: UInt16 = 0x4000

    /// Under lock.
    func select(_ key: UInt16) {
        let key = key & ~Self.writeChannel
        let item = items.first { $0.selector == key }
        selector = item?.selector
        current = item?.bytes ?? []
        offset = 0
    }

    /// For a snapshot (vCPUs paused).
    var state: BuiltInDeviceState.FwCfgRegisters {
        lock.withLock { _ in .init(selector: selector, offset: offset, dmaHigh: dmaHigh) }
    }

    /// Puts back a snapshot's selection; refused when the item is not this fw_cfg's or
    /// the offset lies past its end.
    func restore(_ s: BuiltInDeviceState.FwCfgRegisters) throws(LauncherError) {
        try lock.withLock { _ throws(LauncherError) in
            select(s.selector ?? 0xffff)
            guard s.selector == selector, s.offset <= current.count else {
                let item = s.selector.map { hex($0) } ?? "none"
                throw LauncherError(.snapshot, "fw_cfg item \(item) at offset \(s.offset): not an item of this machine's fw_cfg, or past its \(current.count) bytes")
            }
            offset = s.offset
            dmaHigh = s.dmaHigh
        }
    }
}

private func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
private func be<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.bigEndian) { Array($0) } }
