import FuzzDriver
import Synchronization

/// The empty CD-ROM drive (`ATAPIDrive`) under a program of the input's bytes, read as
/// (op, value) pairs: op bits 0-3 the port (0x170-0x177, 8-14 0x376), 15 a PACKET whose
/// 12 command bytes are the input's next (the byte count limit `value`'s bits as LBA mid
/// and high), bits 4-5 the size (1, 2, 4, 2), bit 6 a write, bit 7 a save and restore into
/// a new drive through the snapshot blob. The status holds only DRDY, DSC, DRQ and ERR,
/// 0x58 exactly while a transfer waits on the data port; the position stays even and
/// inside the block, the block inside the transfer's bytes (12 for the packet, 512 for
/// identify, at most 512 for a reply); the sense is one the drive reports; IRQ 15's line
/// is what the state says; every state reads back through the blob and is accepted there.
func atapiProgram(_ input: UnsafeBufferPointer<UInt8>) {
    let line = Mutex(false)
    var drive = ATAPIDrive()
    drive.connectInterrupt { level in line.withLock { $0 = level } }
    var at = 0
    while at + 1 < input.count {
        let op = input[at], value = input[at + 1]
        at += 2
        let size = [1, 2, 4, 2][Int(op >> 4 & 3)]
        if op & 0x80 != 0 {
            let saved = drive.saved
            do throws(LauncherError) {
                let back = try BuiltInDeviceState.decode(BuiltInDeviceState(atapi: saved).encoded(), version: 1, where: "fuzz")
                check(back.atapi == saved, "ATAPI: snapshot round trip")
            } catch {
                check(false, "ATAPI: a state the drive holds is refused at restore: \(error.message)")
            }
            let fresh = ATAPIDrive()
            fresh.connectInterrupt { level in line.withLock { $0 = level } }
            fresh.restore(saved)
            drive = fresh
        } else if op & 0x0f == 0x0f {
            drive.write(0x174, size: 1, UInt32(value & 0x0f) << 1)
            drive.write(0x175, size: 1, UInt32(value >> 4))
            drive.write(0x177, size: 1, 0xa0)
            for i in stride(from: 0, to: 12, by: 2) {
                let low = at + i < input.count ? UInt32(input[at + i]) : 0, high = at + i + 1 < input.count ? UInt32(input[at + i + 1]) : 0
                drive.write(0x170, size: size == 4 ? 4 : 2, low | high << 8 | (size == 4 ? (low | high << 8) << 16 : 0))
            }
            at += 12
        } else {
            let port = op & 0x0f < 8 ? ATAPIDrive.basePort + UInt16(op & 0x0f) : ATAPIDrive.controlPort
            if op & 0x40 != 0 { drive.write(port, size: size, UInt32(value) * 0x0101_0101) } else { _ = drive.read(port, size: size) }
        }
        let s = drive.saved
        check(s.t.status & ~0x59 == 0, "ATAPI: status \(s.t.status)")
        check((s.phase == .none) == (s.t.status & 0x08 == 0) && (s.phase == .none || s.t.status == 0x58), "ATAPI: status \(s.t.status) in phase \(s.phase)")
        check(s.position % 2 == 0 && s.position <= s.chunkEnd && s.chunkEnd <= s.buffer.count, "ATAPI: position \(s.position), block end \(s.chunkEnd), \(s.buffer.count) bytes")
        let sizes = [ATAPIState.Phase.none: 0...0, .packet: 12...12, .identify: 512...512, .reply: 1...ATAPIState.maxReply][s.phase]!
        check(sizes.contains(s.buffer.count), "ATAPI: \(s.buffer.count) bytes in phase \(s.phase)")
        check(ATAPIState.senses.contains { $0 == (s.senseKey, s.asc) }, "ATAPI: sense \(s.senseKey)/\(s.asc)")
        check(line.withLock { $0 } == s.t.line, "ATAPI: IRQ 15 at \(line.withLock { $0 }), the state says \(s.t.line)")
    }
}
