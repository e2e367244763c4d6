import Glibc
import VMMKit

/// The primary IDE channel of QEMU's `pc` machine with one hard disk as its master
/// (`vmm run --hda PATH`, QEMU's `-hda`): ports 0x1f0-0x1f7 (the task file and the data
/// port), 0x3f6 (alternate status, device control) and IRQ 14, in PIO mode, as a kernel
/// written for QEMU drives it (OSDev's "ATA PIO Mode" and its descendants). The slave is
/// absent, as on QEMU's bus: register writes reach it too, so with it selected the count,
/// LBA and device/head registers read back what was written, error and status (and the
/// alternate status) read 0, and commands are ignored.
///
/// Commands, with QEMU's answers: IDENTIFY DEVICE (0xec, `ATAIdentify`), READ SECTORS
/// (0x20, 0x21) and WRITE SECTORS (0x30, 0x31) in LBA28 or CHS, their LBA48 forms (0x24,
/// 0x34), READ MULTIPLE (0xc4, 0x29) and WRITE MULTIPLE (0xc5, 0x39) in blocks of SET
/// MULTIPLE MODE's (0xc6) 1-16 sectors, 16 after a reset, READ VERIFY (0x40, 0x41, 0x42),
/// READ NATIVE MAX ADDRESS (0xf8, 0x27), FLUSH CACHE (0xe7, 0xea: fdatasync), SET
/// FEATURES, SEEK, INITIALIZE DEVICE PARAMETERS, RECALIBRATE, EXECUTE DEVICE DIAGNOSTIC,
/// CHECK POWER MODE, the standby, idle and sleep commands (status 0x40: QEMU sets no DSC
/// for them); any other (DMA, IDENTIFY PACKET, NOP...) is aborted (status 0x41, error
/// 0x04), as is a transfer that reaches past the last sector or fails on the host, a
/// MULTIPLE command with no block size set, and a block size that is not a power of two
/// up to 16; READ VERIFY succeeds wherever it points, as QEMU's `cmd_verify` checks
/// nothing. A command, and a task-file write, is ignored while BSY or DRQ is set.
/// Each command, and a reset, completes at once (BSY is never seen): a read raises IRQ 14 with DRQ for
/// each block (a sector, or a MULTIPLE command's block), a write for each block it took,
/// unless nIEN is set; reading the status port (not the alternate) lowers it. The data
/// port moves 2 or 4 bytes an access, a `rep insw` of several sectors in one exit; one
/// that does not fit what is left of the block reads 0 and moves nothing, as QEMU's. The
/// other registers are bytes: a 2-byte access is two byte accesses (the byte past 0x1f7 or
/// 0x3f6 reads 0xff), a 4-byte one reads all-ones and writes nothing, as QEMU's portio
/// splits only 2-byte accesses (`outl(0x1f4)` put its top byte in the command register).
///
/// The disk's registers and the sector in flight are saved in snapshots (`ata` in
/// `BuiltInDeviceState`); the image's contents are the image file's, never copied.
final class ATADisk: @unchecked Sendable {
    static let basePort: UInt16 = 0x1f0, controlPort: UInt16 = 0x3f6, irqLine: UInt32 = 14

    let store: SectorStore
    /// Guessed from the image at start, a snapshot's at a restore (before any vCPU runs).
    private(set) var geometry: ATAGeometry
    private var identify: [UInt8] // word 59, the block size, filled in at each IDENTIFY
    private let lock = Lock(())
    private var s = ATAState() // guarded by lock
    private var irq: (@Sendable (Bool) -> Void)?

    init(_ store: SectorStore) {
        self.store = store
        geometry = ATAGeometry(guessing: store)
        identify = ATAIdentify.data(sectors: store.sectors, geometry: geometry)
    }

    /// Drives IRQ 14 through `setLine`; before any vCPU runs.
    func connectInterrupt(_ setLine: @escaping @Sendable (Bool) -> Void) {
        locked { irq = setLine }
    }

    func register(on dispatcher: ExitDispatcher) throws(VMMError) {
        try IDEChannel.register(on: dispatcher, base: Self.basePort, control: Self.controlPort,
                                 owners: ("ATA disk (built-in)", "ATA disk control (built-in)")) { [self] io in
            locked { IDEChannel.eachElement(io, read: readLocked, write: writeLocked) }
        }
    }

    /// One guest read of `size` bytes (1, 2 or 4) at `port` (0x1f0-0x1f7 or 0x3f6).
    func read(_ port: UInt16, size: Int) -> UInt32 { locked { readLocked(port, size: size) } }

    /// One guest write of `size` bytes (1, 2 or 4) at `port`.
    func write(_ port: UInt16, size: Int, _ value: UInt32) { locked { writeLocked(port, size: size, value) } }

    /// For a snapshot (vCPUs paused).
    var saved: ATAState.Saved { locked { .init(sectors: store.sectors, state: s, geometry: geometry) } }

    /// Why `saved` cannot be put back on this disk, or nil: checked with the other
    /// devices' presence, before any device changes. The image must have the snapshot's
    /// size, and a transfer in flight must lie on it.
    func refusal(_ saved: ATAState.Saved) -> String? {
        guard saved.sectors == store.sectors else {
            return "the snapshot's disk had \(saved.sectors) sectors, the --hda image has \(store.sectors)"
        }
        let t = saved.state
        guard t.transfer == .none || t.transfer == .identify
            || t.lba < store.sectors && UInt64(t.blockSectors) + UInt64(t.remaining) <= store.sectors - t.lba else {
            return "the disk's transfer at sector \(t.lba) with \(t.blockSectors - 1 + t.remaining) more lies past its \(store.sectors) sectors"
        }
        return nil
    }

    /// A restore's, checked by `refusal` (before any vCPU runs). The line's level comes
    /// back with the state but is not driven: the irqchip's saved state already holds an
    /// interrupt not yet delivered, and KVM's I/O APIC keeps no line levels across
    /// KVM_SET_IRQCHIP, so raising it again after its interrupt was delivered (the guest's
    /// handler had not yet read the status register) was a second edge, a second interrupt.
    /// The geometry is the snapshot's: its guest addresses sectors by it, whatever the
    /// image's partition table says now.
    func restore(_ saved: ATAState.Saved) {
        locked {
            s = saved.state
            if saved.geometry != geometry {
                geometry = saved.geometry
                identify = ATAIdentify.data(sectors: store.sectors, geometry: geometry)
            }
        }
    }

    private func locked<T>(_ body: () -> T) -> T { lock.withLock { _ in body() } }

    // Under the lock (`IDEChannel.read` and `write` split an access).
    private func readLocked(_ port: UInt16, size: Int) -> UInt32 {
        IDEChannel.read(port, size: size, base: Self.basePort, control: Self.controlPort, data: readData(bytes:), register: readRegister)
    }

    private func writeLocked(_ port: UInt16, size: Int, _ value: UInt32) {
        IDEChannel.write(port, size: size, value, base: Self.basePort, control: Self.controlPort,
                         data: writeData(_:bytes:), register: writeRegister)
    }

    /// QEMU's `ide_ioport_read` (and `ide_status_read` for the alternate status, 8): the
    /// absent slave's error and status read 0, its other registers its copy.
    private func readRegister(_ r: Int) -> UInt8 {
        switch r {
        case 0: return 0xff // a byte of the data port
        case 1: return s.slaveSelected ? 0 : s.read(register: r)
        case 2...5: return s.slaveSelected ? s.slave.read(register: r, hob: s.control & 0x80 != 0) : s.read(register: r)
        case 6: return s.slaveSelected ? s.slave.select : s.select
        case 7:
            setLine(false) // whichever drive is selected
            return s.slaveSelected ? 0 : s.status
        case 8: return s.slaveSelected ? 0 : s.status
        default: return 0xff
        }
    }

    /// QEMU's `ide_ioport_write` (and `ide_ctrl_write`, 8): task-file writes reach both
    /// drives, and are dropped while the selected drive is busy or transferring.
    private func writeRegister(_ r: Int, _ v: UInt8) {
        if r == 8 { return deviceControl(v) }
        if (1...6).contains(r), !s.slaveSelected, s.status & (ATAState.busy | ATAState.drq) != 0 { return }
        switch r {
        case 1...5:
            s.write(register: r, v)
            s.slave.write(register: r, v)
        case 6:
            s.control &= ~0x80
            s.select = v | 0xa0
            s.slave.select = v | 0xa0
        case 7:
            s.control &= ~0x80
            setLine(false)
            command(v)
        default: break
        }
    }

    /// SRST's rising edge resets the drive at once, SRST still set, as QEMU's `ide_ctrl_write`
    /// and `ide_bus_perform_srst` (hw/ide/core.c): `ide_reset`, then the diagnostic's status
    /// 0x50, error 0x01, IRQ 14 unless nIEN; SRST cleared, so its release does nothing.
    private func deviceControl(_ v: UInt8) {
        let was = s.control
        s.control = v
        if v & 0x04 != 0, was & 0x04 == 0 {
            endTransfer()
            s.resetRegisters()
            (s.status, s.error, s.multiple, s.lba48) = (ATAState.ready, 0x01, ATAState.maxMultiple, false)
            s.control &= ~0x04
            raise()
        } else if v & 0x04 == 0, was & 0x04 != 0 {
            // Only a snapshot of the former model, taken mid-reset, holds SRST: it ends here.
            s.status = ATAState.ready
            s.resetRegisters()
        }
    }

    /// A command (port 0x1f7), completed before it returns.
    private func command(_ c: UInt8) {
        guard !s.slaveSelected, s.status & (ATAState.busy | ATAState.drq) == 0 else { return }
        s.error = 0
        s.status = ATAState.ready
        switch c {
        case 0xec:
            s.buffer = identify
            let word59 = s.multiple == 0 ? 0 : 0x100 | UInt16(s.multiple) // the block size set, if any
            (s.buffer[118], s.buffer[119]) = (UInt8(truncatingIfNeeded: word59), UInt8(truncatingIfNeeded: word59 >> 8))
            start(.identify, lba: 0, remaining: 0, lba48: false)
            raise()
        case 0x20, 0x21, 0x24: read(lba48: c == 0x24, block: 1)
        case 0x30, 0x31, 0x34: write(lba48: c == 0x34, block: 1)
        case 0xc4, 0x29, 0xc5, 0x39:
            guard s.multiple != 0 else { return abort() }
            if c == 0xc4 || c == 0x29 { read(lba48: c == 0x29, block: s.multiple) } else { write(lba48: c == 0x39, block: s.multiple) }
        case 0xc6:
            guard ATAState.validMultiple(s.count) else { return abort() }
            s.multiple = s.count
            raise()
        case 0xf8, 0x27:
            // READ NATIVE MAX ADDRESS: the last sector, written as a command's address is read.
            s.setAddress(store.sectors - 1, lba48: c == 0x27, geometry: geometry)
            raise()
        case 0x40, 0x41, 0x42:
            // READ VERIFY: nothing moves, and QEMU's checks no address ("do sector number
            // check ?"), so one past the end succeeds too.
            raise()
        case 0xe7, 0xea:
            guard store.flush() else { return abort() }
            raise()
        case 0xef:
            // SET FEATURES: write cache, transfer mode, look-ahead, reverting defaults, power
            // management and acoustics, and the features QEMU takes as NOPs.
            guard [0x02, 0x03, 0x05, 0x42, 0x55, 0x66, 0x67, 0x69, 0x82, 0x85, 0x96, 0x9a, 0xaa, 0xc2, 0xcc].contains(s.feature) else { return abort() }
            raise()
        case 0x90:
            s.setSignature()
            s.error = 0x01
            raise()
        case 0xe5, 0x98:
            s.count = 0xff // CHECK POWER MODE: active or idle
            raise()
        case 0x91, 0x10, 0x70: raise() // INITIALIZE DEVICE PARAMETERS, RECALIBRATE, SEEK
        case 0xe0...0xe3, 0x94...0x97, 0xe6, 0x99:
            // Standby, idle and sleep: QEMU's `cmd_nop` without SET_DSC, so DRDY alone.
            s.status = 0x40
            raise()
        default: abort()
        }
    }

    /// The command's first sector and count, when all of them exist.
    private func range(lba48: Bool) -> (UInt64, UInt32)? {
        let count = s.sectorCount(lba48: lba48)
        guard let lba = s.address(lba48: lba48, geometry: geometry), lba < store.sectors,
              UInt64(count) <= store.sectors - lba else { return nil }
        return (lba, count)
    }

    /// A read of the command's sectors in blocks of `block`.
    private func read(lba48: Bool, block: UInt8) {
        guard let (lba, count) = range(lba48: lba48) else { return abort() }
        s.blockSize = block
        load(lba, count: count, lba48: lba48)
    }

    /// The next block (`blockSize` sectors, or the `count` left from `lba` if fewer) into
    /// the buffer with DRQ and an interrupt; the task file then names the sector after
    /// it, and the count what is left, as QEMU's.
    private func load(_ lba: UInt64, count: UInt32, lba48: Bool) {
        let n = Int(min(UInt32(s.blockSize), count))
        var block = [UInt8](repeating: 0, count: n * ATAState.sectorSize)
        let read = block.withUnsafeMutableBytes { b in
            (0..<n).allSatisfy { i in store.read(lba + UInt64(i), into: .init(rebasing: b[i * ATAState.sectorSize..<(i + 1) * ATAState.sectorSize])) }
        }
        guard read else { return abort() }
        s.buffer = block
        start(.read, lba: lba, remaining: count - UInt32(n), lba48: lba48)
        s.setAddress(lba + UInt64(n), lba48: lba48, geometry: geometry)
        setCount(s.remaining, lba48: lba48)
        raise()
    }

    /// A write of the command's sectors in blocks of `block`: DRQ, no interrupt until a
    /// block is in.
    private func write(lba48: Bool, block: UInt8) {
        guard let (lba, count) = range(lba48: lba48) else { return abort() }
        s.blockSize = block
        expectBlock(lba, count: count, lba48: lba48)
    }

    /// Room for the next block the guest writes (`blockSize` sectors or the `count` left).
    private func expectBlock(_ lba: UInt64, count: UInt32, lba48: Bool) {
        let n = min(UInt32(s.blockSize), count)
        s.buffer = [UInt8](repeating: 0, count: Int(n) * ATAState.sectorSize)
        start(.write, lba: lba, remaining: count - n, lba48: lba48)
    }

    private func start(_ transfer: ATAState.Transfer, lba: UInt64, remaining: UInt32, lba48: Bool) {
        (s.transfer, s.lba, s.remaining, s.position, s.lba48) = (transfer, lba, remaining, 0, lba48)
        s.status = ATAState.ready | ATAState.drq
    }

    private func setCount(_ n: UInt32, lba48: Bool) {
        s.count = UInt8(truncatingIfNeeded: n)
        if lba48 { s.hobCount = UInt8(truncatingIfNeeded: n >> 8) }
    }

    private func readData(bytes: Int) -> UInt32 {
        guard s.status & ATAState.drq != 0, s.transfer == .read || s.transfer == .identify,
              bytes <= s.buffer.count - s.position else { return 0 }
        var v: UInt32 = 0
        for b in 0..<bytes { v |= UInt32(s.buffer[s.position + b]) << (8 * UInt32(b)) }
        s.position += bytes
        if s.position == s.buffer.count { blockRead() }
        return v
    }

    private func blockRead() {
        guard s.transfer == .read, s.remaining > 0 else {
            endTransfer()
            s.status = ATAState.ready // no interrupt at the end of a read, as QEMU's
            return
        }
        load(s.lba + UInt64(s.blockSectors), count: s.remaining, lba48: s.lba48)
    }

    private func writeData(_ value: UInt32, bytes: Int) {
        guard s.status & ATAState.drq != 0, s.transfer == .write, bytes <= s.buffer.count - s.position else { return }
        for b in 0..<bytes { s.buffer[s.position + b] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(b))) }
        s.position += bytes
        guard s.position == s.buffer.count else { return }
        // The block's sectors in turn: those before a host failure are written, as a
        // drive's would be.
        let n = Int(s.blockSectors), size = ATAState.sectorSize
        let written = s.buffer.withUnsafeBytes { b in
            (0..<n).allSatisfy { i in store.write(s.lba + UInt64(i), from: .init(rebasing: b[i * size..<(i + 1) * size])) }
        }
        guard written else { return abort() }
        let next = s.lba + UInt64(n)
        s.setAddress(next, lba48: s.lba48, geometry: geometry)
        setCount(s.remaining, lba48: s.lba48)
        if s.remaining > 0 {
            expectBlock(next, count: s.remaining, lba48: s.lba48)
        } else {
            endTransfer()
            s.status = ATAState.ready
        }
        raise()
    }

    /// No transfer: the data port moves nothing, and a snapshot holds no sector (the
    /// buffer zeroed, as a restore of `-` leaves it).
    private func endTransfer() {
        (s.transfer, s.position, s.blockSize) = (.none, 0, 1)
        s.buffer = [UInt8](repeating: 0, count: ATAState.sectorSize)
    }

    /// QEMU's ide_abort_command: the transfer ends, status ready + error, error "aborted".
    private func abort() {
        endTransfer()
        (s.status, s.error) = (0x40 | ATAState.err, ATAState.abort)
        raise()
    }

    private func raise() {
        if !s.interruptsDisabled { setLine(true) }
    }

    private func setLine(_ level: Bool) {
        guard level != s.line else { return }
        s.line = level
        irq?(level)
    }
}
