import FuzzDriver
import Synchronization

/// The floppy controller with its empty drive A (`FloppyController`) under a program of
/// the input's bytes, read as (op, value) pairs: op bits 0-2 the port (0x3f1-0x3f5,
/// 0x3f7, and 0x3f0 and 0x3f6, which are not its own), bit 6 a write of `value`, bit 7 a
/// save and restore into a new controller through the snapshot blob; command bytes are
/// whatever the program writes to the FIFO. Every state is one a snapshot takes back
/// (`FloppyState.refusal`), the MSR shows only RQM, DIO and busy, IRQ 6's line is what
/// the state says, a line never rises twice without falling, and a restore drives none.
func floppyProgram(_ input: UnsafeBufferPointer<UInt8>) {
    let ports: [UInt16] = [0x3f1, 0x3f2, 0x3f3, 0x3f4, 0x3f5, 0x3f7, 0x3f0, 0x3f6]
    let line = Mutex((level: false, badEdge: false))
    func connect(_ f: FloppyController) {
        f.connectInterrupt { level in line.withLock { if $0.level == level { $0.badEdge = true }; $0.level = level } }
    }
    var fdc = FloppyController()
    connect(fdc)
    var at = 0
    while at + 1 < input.count {
        let op = input[at], value = input[at + 1]
        at += 2
        if op & 0x80 != 0 {
            let saved = fdc.saved
            do throws(LauncherError) {
                let back = try BuiltInDeviceState.decode(BuiltInDeviceState(floppy: saved).encoded(), version: 1, where: "fuzz")
                check(back.floppy == saved, "floppy: snapshot round trip")
            } catch {
                check(false, "floppy: a state the controller holds is refused at restore: \(error.message)")
            }
            let fresh = FloppyController()
            connect(fresh)
            fresh.restore(saved)
            fdc = fresh
        } else {
            let port = ports[Int(op & 7)]
            if op & 0x40 != 0 {
                fdc.write(port, value)
            } else {
                let v = fdc.read(port)
                check(port != 0x3f4 || v & ~0xd0 == 0, "floppy: MSR \(v)")
                check(ports.prefix(6).contains(port) || v == 0xff, "floppy: port \(port) not its own read \(v)")
            }
        }
        let s = fdc.saved
        check(FloppyState.refusal(s) == nil, "floppy: \(FloppyState.refusal(s) ?? "")")
        let l = line.withLock { $0 }
        check(!l.badEdge, "floppy: IRQ 6 driven to the level it had")
        check(l.level == s.interruptPending, "floppy: IRQ 6 at \(l.level), the state says \(s.interruptPending)")
    }
}
