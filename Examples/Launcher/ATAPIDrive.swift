import Glibc
import VMMKit

/// The secondary IDE channel of QEMU's `pc` machine: an empty ATAPI CD-ROM drive as its
/// master (QEMU's default `-cdrom` drive with no medium), ports 0x170-0x177, 0x376 and
/// IRQ 15, in PIO mode, as QEMU's hw/ide/core.c and hw/ide/atapi.c answer for it. The
/// slave is absent, as on the primary channel (`ATADisk`).
///
/// ATA commands: IDENTIFY PACKET DEVICE (0xa1: `ATAPICommands.identify`, DRQ and IRQ 15),
/// PACKET (0xa0: DRQ for the 12-byte command, no interrupt), DEVICE RESET (0x08: a reset,
/// status 0, error 0) and EXECUTE DEVICE DIAGNOSTIC (0x90: status 0, error 1), which leave
/// the signature (count 1, LBA low 1, LBA mid 0x14, LBA high 0xeb) with no interrupt,
/// and SET FEATURES;
/// IDENTIFY DEVICE and READ SECTORS set the signature and abort (status 0x41, error 0x04,
/// IRQ 15), as does any other command, FLUSH CACHE (no medium to flush) and PACKET asking
/// for overlap or DMA (none here). DEVICE RESET is taken while DRQ is set; others are
/// ignored then. SRST resets the drive: status 0, error 1, the signature, IRQ 15 unless
/// nIEN (QEMU's absent slave raises it).
///
/// Packet commands (`ATAPICommands.run`) end as QEMU's: with an interrupt, the count
/// register's interrupt reason 3 (command done: I/O and C/D), status 0x50 or 0x41 with
/// the sense key in the error register's high nibble; a reply goes out in DRQ blocks of
/// at most the byte count limit the guest wrote in LBA mid and high (even when cut),
/// each with reason 2 (data in), the block's size in LBA mid and high, and an interrupt.
/// The data port moves 2 or 4 bytes an access; one that does not fit what is left of the
/// block reads 0 (writes nothing) and moves nothing, as QEMU's, so an odd-sized block
/// stays pending until a reset, as there.
///
/// Its state, a transfer in flight included, is saved in snapshots (`atapi` in
/// `BuiltInDeviceState`).
final class ATAPIDrive: @unchecked Sendable {
    static let basePort: UInt16 = 0x170, controlPort: UInt16 = 0x376, irqLine: UInt32 = 15

    private let lock = Lock(())
    private var s = ATAPIState() // guarded by lock
    private var irq: (@Sendable (Bool) -> Void)?


    /// Drives IRQ 15 through `setLine`; before any vCPU runs.
    func connectInterrupt(_ setLine: @escaping @Sendable (Bool) -> Void) {
        locked { irq = setLine }
    }

    func register(on dispatcher: ExitDispatcher) throws(VMMError) {
        try IDEChannel.register(on: dispatcher, base: Self.basePort, control: Self.controlPort,
                                    owners: ("IDE secondary channel, empty CD-ROM (built-in)",
                                             "IDE secondary channel control, empty CD-ROM (built-in)")) { [self] io in
            locked { IDEChannel.eachElement(io, read: readLocked, write: writeLocked) }
        }
    }

    /// One guest read of `size` bytes (1, 2 or 4) at `port` (0x170-0x177 or 0x376).
    func read(_ port: UInt16, size: Int) -> UInt32 { locked { readLocked(port, size: size) } }

    /// One guest write of `size` bytes (1, 2 or 4) at `port`.
    func write(_ port: UInt16, size: Int, _ value: UInt32) { locked { writeLocked(port, size: size, value) } }

    /// For a snapshot (vCPUs paused).
    var saved: ATAPIState { locked { s } }

    /// A restore's (checked by `ATAPIState.decode`), before any vCPU runs. The line's level
    /// comes back but is not driven, as the disk's (`ATADisk.restore`): the irqchip's state
    /// holds any interrupt not yet delivered.
    func restore(_ saved: ATAPIState) { locked { s = saved } }

    private func locked<T>(_ body: () -> T) -> T { lock.withLock { _ in body() } }

    private func readLocked(_ port: UInt16, size: Int) -> UInt32 {
        IDEChannel.read(port, size: size, base: Self.basePort, control: Self.controlPort, data: readData(bytes:), register: readRegister)
    }

    private func writeLocked(_ port: UInt16, size: Int, _ value: UInt32) {
        IDEChannel.write(port, size: size, value, base: Self.basePort, control: Self.controlPort,
                         data: writeData(_:bytes:), register: writeRegister)
    }

    /// QEMU's `ide_ioport_read` and `ide_status_read` (8): the absent slave's error and
    /// status read 0, its other registers its copy.
    private func readRegister(_ r: Int) -> UInt8 {
        let t = s.t
        switch r {
        case 1: return t.slaveSelected ? 0 : t.read(register: r)
        case 2...5: return t.slaveSelected ? t.slave.read(register: r, hob: t.control & 0x80 != 0) : t.read(register: r)
        case 6: return t.slaveSelected ? t.slave.select : t.select
        case 7:
            setLine(false)
            return t.slaveSelected ? 0 : t.status
        case 8: return t.slaveSelected ? 0 : t.status
        default: return 0xff // a byte of the data port
        }
    }

    /// QEMU's `ide_ioport_write` and `ide_ctrl_write` (8): task-file writes reach both
    /// drives and are dropped while the drive is busy or transferring.
    private func writeRegister(_ r: Int, _ v: UInt8) {
        if r == 8 { return deviceControl(v) }
        if (1...6).contains(r), !s.t.slaveSelected, s.t.status & (ATAState.busy | ATAState.drq) != 0 { return }
        switch r {
        case 1...5:
            s.t.write(register: r, v)
            s.t.slave.write(register: r, v)
        case 6:
            s.t.control &= ~0x80
            s.t.select = v | 0xa0
            s.t.slave.select = v | 0xa0
        case 7:
            s.t.control &= ~0x80
            setLine(false)
            command(v)
        default: break
        }
    }

    /// SRST's rising edge: both drives reset at once, SRST still set, as QEMU's
    /// `ide_bus_perform_srst`: the drive's diagnostic leaves status 0 and error 1 with no
    /// interrupt, the absent slave's raises IRQ 15 unless nIEN.
    private func deviceControl(_ v: UInt8) {
        let was = s.t.control
        s.t.control = v
        guard v & 0x04 != 0, was & 0x04 == 0 else { return }
        s.reset()
        s.t.slave = ATAState.SlaveRegisters()
        (s.t.status, s.t.error) = (0, 0x01)
        s.t.control &= ~0x04
        raise()
    }

    /// A command (port 0x177), completed before it returns (QEMU's `ide_exec_cmd` for a CD).
    private func command(_ c: UInt8) {
        guard !s.t.slaveSelected else { return }
        guard s.t.status & (ATAState.busy | ATAState.drq) == 0 || c == 0x08 else { return }
        s.t.error = 0
        switch c {
        case 0x08: // DEVICE RESET: the drive (its transfer too), status 0, error 0 (`ide_reset`'s)
            s.reset()
            s.t.status = 0
        case 0x90:
            ATAPIState.setSignature(&s.t)
            (s.t.status, s.t.error) = (0, 0x01)
        case 0x20, 0xec:
            ATAPIState.setSignature(&s.t)
            abort()
        case 0xa0:
            guard s.t.feature & 0x03 == 0 else { return abort() }
            s.t.count = 1 // interrupt reason: the command packet, to the drive
            start(.packet, [UInt8](repeating: 0, count: ATAPIState.packetSize))
        case 0xa1:
            start(.identify, ATAPICommands.identify)
            raise()
        case 0xef:
            // SET FEATURES: QEMU's list; 0x82 (write cache off) flushes, which fails with no
            // medium; 0x03 takes the transfer modes it knows.
            let accepted: Set<UInt8> = [0x02, 0x05, 0x42, 0x55, 0x66, 0x67, 0x69, 0x85, 0x96, 0x9a, 0xaa, 0xc2, 0xcc]
            guard accepted.contains(s.t.feature) || s.t.feature == 0x03 && [0, 1, 2, 4, 8].contains(s.t.count >> 3) else { return abort() }
            s.t.status = ATAState.ready
            raise()
        default: abort()
        }
    }

    private func start(_ phase: ATAPIState.Phase, _ bytes: [UInt8]) {
        (s.phase, s.buffer, s.position, s.chunkEnd) = (phase, bytes, 0, bytes.count)
        s.t.status = ATAState.ready | ATAState.drq
    }

    private func readData(bytes: Int) -> UInt32 {
        guard !s.t.slaveSelected, s.t.status & ATAState.drq != 0, s.phase == .identify || s.phase == .reply, bytes <= s.chunkEnd - s.position else { return 0 }
        var v: UInt32 = 0
        for b in 0..<bytes { v |= UInt32(s.buffer[s.position + b]) << (8 * UInt32(b)) }
        s.position += bytes
        guard s.position == s.chunkEnd else { return v }
        s.t.status &= ~ATAState.drq
        if s.phase == .identify { endTransfer() } else { nextBlock() }
        return v
    }

    private func writeData(_ value: UInt32, bytes: Int) {
        guard !s.t.slaveSelected, s.t.status & ATAState.drq != 0, s.phase == .packet, bytes <= s.chunkEnd - s.position else { return }
        for b in 0..<bytes { s.buffer[s.position + b] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(b))) }
        s.position += bytes
        guard s.position == s.chunkEnd else { return }
        let cdb = s.buffer
        endTransfer()
        switch ATAPICommands.run(cdb, &s) {
        case .ok: done(status: ATAState.ready, error: 0)
        case let .error(key, asc):
            (s.senseKey, s.asc) = (key, asc)
            done(status: 0x40 | ATAState.err, error: key << 4)
        case let .reply(bytes, max):
            s.buffer = Array(bytes.prefix(max))
            (s.position, s.chunkEnd) = (0, 0)
            s.t.status = ATAState.ready
            nextBlock()
        case .abort:
            // QEMU's `validate_bcl`: aborted at the ATA level, with no interrupt.
            (s.t.status, s.t.error) = (0x40 | ATAState.err, ATAState.abort)
        }
    }

    /// The reply's next DRQ block, as QEMU's `ide_atapi_cmd_reply_end`: at most the byte
    /// count limit (0xffff taken as 0xfffe, made even when it cuts the rest), reason 2,
    /// the size in LBA mid and high, an interrupt; with nothing left, the command's end.
    private func nextBlock() {
        let left = s.buffer.count - s.chunkEnd
        guard left > 0 else { return done(status: ATAState.ready, error: 0) }
        s.t.count = s.t.count & ~7 | 2
        raise()
        var limit = Int(s.t.lbaHigh) << 8 | Int(s.t.lbaMid)
        if limit == 0xffff { limit = 0xfffe }
        let size = left > limit ? limit & ~1 : left
        (s.t.lbaMid, s.t.lbaHigh) = (UInt8(truncatingIfNeeded: size), UInt8(truncatingIfNeeded: size >> 8))
        (s.phase, s.position, s.chunkEnd) = (.reply, s.chunkEnd, s.chunkEnd + size)
        s.t.status = ATAState.ready | ATAState.drq
    }

    /// A packet command's end: reason 3 (I/O and C/D), the status, an interrupt.
    private func done(status: UInt8, error: UInt8) {
        endTransfer()
        (s.t.status, s.t.error) = (status, error)
        s.t.count = s.t.count & ~7 | 3
        raise()
    }

    private func endTransfer() {
        (s.phase, s.buffer, s.position, s.chunkEnd) = (.none, [], 0, 0)
        s.t.status &= ~ATAState.drq
    }

    /// QEMU's `ide_abort_command` and its interrupt.
    private func abort() {
        endTransfer()
        (s.t.status, s.t.error) = (0x40 | ATAState.err, ATAState.abort)
        raise()
    }

    private func raise() {
        if !s.t.interruptsDisabled { setLine(true) }
    }

    private func setLine(_ level: Bool) {
        guard level != s.t.line else { return }
        s.t.line = level
        irq?(level)
    }
}
