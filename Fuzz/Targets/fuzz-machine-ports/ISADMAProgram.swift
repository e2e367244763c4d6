import FuzzDriver

/// The ISA DMA controllers (`ISADMA`) under a program of the input's bytes, read as (op,
/// value) pairs: op bits 0-5 pick one of its 56 ports, bit 6 a write of `value`, bit 7 a
/// save and restore into new controllers through the snapshot blob. Every state is one
/// the blob takes back, the status never holds a terminal count, and the current
/// address stays within its controller's width.
func dmaProgram(_ input: UnsafeBufferPointer<UInt8>) {
    var dma = ISADMA()
    var at = 0
    while at + 1 < input.count {
        let op = input[at], value = input[at + 1]
        at += 2
        if op & 0x80 != 0 {
            let saved = dma.registers
            do throws(LauncherError) {
                let back = try BuiltInDeviceState.decode(BuiltInDeviceState(dma: saved).encoded(), version: 1, where: "fuzz")
                check(back.dma == saved, "isa-dma: snapshot round trip")
            } catch {
                check(false, "isa-dma: a state the controllers hold is refused at restore: \(error.message)")
            }
            let fresh = ISADMA()
            fresh.restore(saved)
            dma = fresh
        } else {
            let port = ISADMA.ports[Int(op & 0x3f) % ISADMA.ports.count]
            if op & 0x40 != 0 { dma.write(port, value) } else { _ = dma.read(port) }
        }
        for (n, c) in dma.registers.enumerated() {
            check(c.status & 0x0f == 0, "isa-dma: controller \(n) status \(c.status)")
            check(c.channels.allSatisfy { $0.address <= UInt32(0xffff) << UInt32(n) }, "isa-dma: controller \(n) address past its width")
        }
    }
}
