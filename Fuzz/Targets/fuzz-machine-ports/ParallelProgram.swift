import FuzzDriver
import Synchronization

/// LPT1 (`ParallelPort`) under a program of the input's bytes, read as (op, value) pairs:
/// op bits 0-2 the port (0x378-0x37f), bit 6 a write of `value`, bit 7 a save and restore
/// into a new port through the snapshot blob. The status holds only its five bits, the
/// control always bits 6 and 7, IRQ 7's line is the state's, a line never moves to the
/// level it had, a restore drives none, and every state reads back through the blob. The
/// printer gets the latch on a strobe's rise (selected, initialised) and nothing else.
func parallelProgram(_ input: UnsafeBufferPointer<UInt8>) {
    let line = Mutex((level: false, badEdge: false))
    let printed = Mutex<[UInt8]>([])
    func connect(_ p: ParallelPort) {
        p.connectInterrupt { level in line.withLock { if $0.level == level { $0.badEdge = true }; $0.level = level } }
        p.connectPrinter { bytes in printed.withLock { $0 += bytes } }
    }
    var lpt = ParallelPort()
    connect(lpt)
    var at = 0
    while at + 1 < input.count {
        let op = input[at], value = input[at + 1]
        at += 2
        let before = lpt.registers
        var expected: [UInt8] = []
        if op & 0x80 != 0 {
            let saved = lpt.registers
            do throws(LauncherError) {
                let back = try BuiltInDeviceState.decode(BuiltInDeviceState(parallel: saved).encoded(), version: 1, where: "fuzz")
                check(back.parallel == saved, "parallel: snapshot round trip")
            } catch {
                check(false, "parallel: a state the port holds is refused at restore: \(error.message)")
            }
            let fresh = ParallelPort()
            connect(fresh)
            fresh.restore(saved)
            lpt = fresh
        } else {
            let port = ParallelPort.base + UInt16(op & 7)
            if op & 0x40 != 0 {
                if port == 0x37a, value & 0x0d == 0x0d, before.control & 1 == 0 { expected = [before.data] }
                lpt.write(port, value)
            } else {
                _ = lpt.read(port)
            }
        }
        let got = printed.withLock { p in defer { p = [] }; return p }
        check(got == expected, "parallel: printed \(got), expected \(expected)")
        let r = lpt.registers, l = line.withLock { $0 }
        check(r.status & ~0xd9 == 0 && r.control & 0xc0 == 0xc0, "parallel: status \(r.status), control \(r.control)")
        check(!l.badEdge, "parallel: IRQ 7 driven to the level it had")
        check(l.level == r.pending, "parallel: IRQ 7 at \(l.level), the state says \(r.pending)")
    }
}
