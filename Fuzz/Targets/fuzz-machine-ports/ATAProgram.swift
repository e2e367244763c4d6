import FuzzDriver
import Synchronization

/// The ATA disk (`ATADisk`) on a disk of 1 to 40 sectors in memory under a program of the
/// input's bytes, read as (op, value) pairs: op bits 0-3 the port (0x1f0-0x1f7, then
/// 0x3f6), bits 4-5 the size (1, 2, 4, 2), bit 6 a write, bit 7 a save and restore into a
/// new disk through the snapshot blob. The status holds only BSY, DRDY, DSC, DRQ and ERR;
/// DRQ is set exactly while a transfer waits on the data port, whose position stays
/// inside the block (0 with none), a block of whole sectors, at most the block size SET
/// MULTIPLE MODE set (one sector with none), all on the disk; the size set is one it
/// accepts; IRQ 14's line is what the state says; the disk never grows; every state
/// reads back through the blob.
func ataProgram(_ input: UnsafeBufferPointer<UInt8>) {
    guard let first = input.first else { return }
    let sectors = Int(first % 40) + 1
    // Sector 0's partition table and signature are the input's last 66 bytes (when it has
    // that many), so the geometry guess reads any table.
    var bytes = [UInt8](repeating: 0xa5, count: sectors * 512)
    if input.count >= 66 { bytes.replaceSubrange(0x1be..<0x200, with: input.suffix(66)) }
    let store = MemorySectors(bytes, readOnly: first & 0x80 != 0)
    let line = Mutex(false)
    var disk = ATADisk(store)
    let g = disk.geometry
    check(g.heads >= 1 && g.heads <= 16 && g.sectorsPerTrack >= 1 && g.sectorsPerTrack <= 63 && g.cylinders >= 1 && g.cylinders <= 16383,
          "ATA: geometry \(g.cylinders)/\(g.heads)/\(g.sectorsPerTrack) past what IDENTIFY and the CMOS can say")
    disk.connectInterrupt { level in line.withLock { $0 = level } }
    for at in stride(from: 1, to: input.count - 1, by: 2) {
        let op = input[at], value = UInt32(input[at + 1]) * 0x0101_0101
        let port = op & 0x0f < 8 ? ATADisk.basePort + UInt16(op & 0x0f) : ATADisk.controlPort
        let size = [1, 2, 4, 2][Int(op >> 4 & 3)]
        if op & 0x80 != 0 {
            let saved = disk.saved
            do throws(LauncherError) {
                let back = try BuiltInDeviceState.decode(BuiltInDeviceState(ata: saved).encoded(), version: 1, where: "fuzz")
                check(back.ata == saved, "ATA: snapshot round trip")
            } catch {
                check(false, "ATA: a state the disk holds is refused at restore: \(error.message)")
            }
            let fresh = ATADisk(store)
            check(fresh.refusal(saved) == nil, "ATA: its own state refused: \(fresh.refusal(saved) ?? "")")
            fresh.connectInterrupt { level in line.withLock { $0 = level } }
            fresh.restore(saved)
            disk = fresh
        } else if op & 0x40 != 0 {
            disk.write(port, size: size, value)
        } else {
            _ = disk.read(port, size: size)
        }
        let s = disk.saved.state
        check(s.status & ~ATAState.statusBits == 0, "ATA: status \(s.status)")
        check((s.status & ATAState.drq != 0) == (s.transfer != .none), "ATA: status \(s.status) with transfer \(s.transfer)")
        check(s.position >= 0 && s.position < s.buffer.count && s.position % 2 == 0 && (s.transfer != .none || s.position == 0),
              "ATA: position \(s.position) in \(s.buffer.count) bytes with transfer \(s.transfer)")
        check(s.buffer.count % 512 == 0 && s.blockSectors >= 1 && s.blockSectors <= UInt32(s.blockSize)
              && (s.transfer == .read || s.transfer == .write || s.blockSectors == 1 && s.blockSize == 1),
              "ATA: a block of \(s.buffer.count) bytes, block size \(s.blockSize), transfer \(s.transfer)")
        check(ATAState.validMultiple(s.multiple) && (s.blockSize == 1 || s.blockSize == s.multiple), "ATA: multiple \(s.multiple), block size \(s.blockSize)")
        if s.transfer == .read || s.transfer == .write {
            check(s.lba < UInt64(sectors) && UInt64(s.blockSectors) + UInt64(s.remaining) <= UInt64(sectors) - s.lba,
                  "ATA: sector \(s.lba), a block of \(s.blockSectors) and \(s.remaining) more on a disk of \(sectors)")
        }
        check(line.withLock { $0 } == s.line, "ATA: IRQ 14 at \(line.withLock { $0 }), the state says \(s.line)")
        check(store.bytes.count == sectors * 512, "ATA: the disk grew to \(store.bytes.count) bytes")
    }
}
