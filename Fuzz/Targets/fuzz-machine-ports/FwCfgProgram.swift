import FuzzDriver
import Glibc
import VMMKit

/// 64 KiB of guest RAM and a read-only page after it, made once (not per run).
nonisolated(unsafe) let fwCfgMemory: GuestMemory = {
    let m = GuestMemory.detached()
    try! m.addRegion(name: "ram", guestAddress: 0, size: 0x10000)
    try! m.addRegion(name: "rom", guestAddress: 0x10000, size: 0x1000, readOnly: true)
    return m
}()

/// fw_cfg (`FwCfg`, `FwCfg+DMA`) under a program of the input's bytes, read as (op,
/// value) pairs: op bits 0-1 pick a port access (any port 0x510-0x51b, any size 1, 2
/// or 4, read or write of the next 4 input bytes), a descriptor the input writes into
/// RAM (control, length, address from the next 16 bytes, at any address, crossing into
/// ROM or not) started through the register, or a save and restore into a new fw_cfg
/// through the snapshot blob. Files: the input's first bytes as `opt/a` and a small
/// `bootorder`; the x86 items (FW_CFG_HPET with the HPET for an input of even length,
/// without it for an odd one). Never a trap; the ROM page never changes; the offset never passes the
/// selected item's end; a descriptor wholly in RAM (and no high half written before it)
/// gets a control word of 0 or 1 back.
func fwCfgProgram(_ input: UnsafeBufferPointer<UInt8>) {
    let memory = fwCfgMemory
    let ram = try! memory.hostPointer(0, length: 0x10000), rom = try! memory.hostPointer(0x10000, length: 0x1000)
    memset(ram, 0, 0x10000)
    memset(rom, 0x5a, 0x1000)
    let files = [FwCfgFile(name: "opt/a", bytes: Array(input.prefix(300))), FwCfgFile(name: "bootorder", bytes: [1, 2, 3])]
    let hpet = input.count % 2 == 0
    var f = FwCfg(cpus: 2, ramSize: 64 << 20, files: files, memory: memory, hpet: hpet)
    func word(_ at: Int, _ n: Int) -> UInt64 { (0..<n).reduce(0) { $0 << 8 | UInt64(at + $1 < input.count ? input[at + $1] : 0) } }
    var at = 0
    while at + 1 < input.count {
        let op = input[at], value = input[at + 1]
        at += 2
        switch op & 3 {
        case 0, 1:
            let port = FwCfg.selectorPort + UInt16(value % 12), size = [1, 2, 4, 4][Int(op >> 2 & 3)]
            var bytes = [UInt8](repeating: 0, count: 4)
            bytes.withUnsafeMutableBytes { buf in
                let io = PIOAccess.synthetic(port: port, size: size, isWrite: op & 0x10 != 0, data: UnsafeMutableRawBufferPointer(rebasing: buf[0..<size]))
                if io.isWrite { io.value = UInt32(truncatingIfNeeded: word(at, 4)) }
                f.access(io)
            }
            at += 4
        case 2:
            // A descriptor at any address of the first 64 KiB and a little past.
            let address = UInt64(value) << 8 | UInt64(op >> 2) & 0x3f
            let descriptor = (0..<16).map { UInt8(truncatingIfNeeded: word(at + $0, 1)) }
            // Used as written only when no high half is waiting in the register.
            let inRAM = address + 16 <= 0x10000 && f.dmaHigh == 0
            if inRAM { try! memory.writeBytes(address, descriptor) }
            var bytes = [UInt8](repeating: 0, count: 4)
            bytes.withUnsafeMutableBytes { buf in
                let io = PIOAccess.synthetic(port: FwCfg.dmaPort + 4, size: 4, isWrite: true, data: UnsafeMutableRawBufferPointer(rebasing: buf[0..<4]))
                io.value = UInt32(truncatingIfNeeded: address).byteSwapped
                f.access(io)
            }
            if inRAM {
                let control = UInt32(bigEndian: try! memory.read(address, as: UInt32.self))
                check(control <= 1, "fw_cfg: control \(control) written back")
            }
            at += 16
        default:
            let saved = f.state
            do throws(LauncherError) {
                let back = try BuiltInDeviceState.decode(BuiltInDeviceState(fwCfg: saved).encoded(), version: 1, where: "fuzz")
                check(back.fwCfg == saved, "fw_cfg: snapshot round trip")
                let restoredFiles = try? FwCfgFile.decode(FwCfgFile.encode(f.files), version: 1)
                check(restoredFiles == f.files, "fw_cfg: files round trip")
                f = FwCfg(cpus: 2, ramSize: 64 << 20, files: restoredFiles ?? [], memory: memory, hpet: hpet)
                try f.restore(saved)
                check(f.state == saved, "fw_cfg: restored \(f.state), saved \(saved)")
            } catch {
                check(false, "fw_cfg: a state it holds is refused at restore: \(error.message)")
            }
        }
        check(f.offset <= f.current.count, "fw_cfg: offset \(f.offset) past \(f.current.count) bytes")
        check(UnsafeRawBufferPointer(start: rom, count: 0x1000).allSatisfy { $0 == 0x5a }, "fw_cfg: the ROM page changed")
    }
}
