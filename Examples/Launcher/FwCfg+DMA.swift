import Glibc
import VMMKit

/// fw_cfg's DMA interface (QEMU's docs/specs/fw_cfg.rst): the guest writes the guest-
/// physical address of a 16-byte `FWCfgDmaAccess` (big-endian control, length, address)
/// to the 64-bit big-endian register at port 0x514, high half first; writing the low
/// half (port 0x518) runs the transfer at once and clears the register. Control bits:
/// 3 select (the item in the upper 16 bits, offset 0), then 1 read (copy `length` bytes
/// of the item into guest memory, zeros past its end), else 4 write (refused: no item is
/// writable, as QEMU's for a user's files), else 2 skip (move the offset on). The device
/// writes the control word back: 0 when done, bit 0 when something failed.
///
/// Every address and length comes from the guest: a descriptor or a buffer that is not
/// wholly inside one writable RAM region is an error the guest sees, never a host
/// access; a length of up to 4 GiB is bounded by the region it must lie in.
extension FwCfg {
    static let dmaPort: UInt16 = 0x514
    /// What a read of the register gives: "QEMU CFG", big-endian.
    static let dmaSignature = Array("QEMU CFG".utf8)

    enum Control {
        static let error: UInt32 = 0x01
        static let read: UInt32 = 0x02
        static let skip: UInt32 = 0x04
        static let select: UInt32 = 0x08
        static let write: UInt32 = 0x10
    }

    /// One guest access to ports 0x514-0x51b (under lock). QEMU takes 4-byte accesses to
    /// either half (and 8-byte ones, which port I/O cannot make); any other access reads
    /// all-ones and writes nothing, as an access QEMU refuses.
    func dmaAccess(_ io: PIOAccess) {
        let at = Int(io.port &- Self.dmaPort)
        guard io.size == 4, at == 0 || at == 4 else {
            if !io.isWrite { for i in 0..<io.count { io.setElement(i, ~0) } }
            return
        }
        for i in 0..<io.count {
            if !io.isWrite {
                // The register's bytes in port order: the guest reads "QEMU" then " CFG".
                let b = Self.dmaSignature[at..<(at + 4)].reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
                io.setElement(i, b)
            } else if at == 0 {
                dmaHigh = io.element(i).byteSwapped
            } else {
                let address = UInt64(dmaHigh) << 32 | UInt64(io.element(i).byteSwapped)
                dmaHigh = 0
                transfer(descriptor: address)
            }
        }
    }

    /// Runs the transfer the descriptor at `address` asks for and writes its control word
    /// back (under lock). A descriptor outside RAM has nowhere to report to: nothing happens.
    func transfer(descriptor address: UInt64) {
        guard let memory, let raw = try? memory.readBytes(address, count: 16) else { return }
        func word(_ at: Int, _ count: Int) -> UInt64 { raw[at..<(at + count)].reduce(UInt64(0)) { $0 << 8 | UInt64($1) } }
        let control = UInt32(word(0, 4))
        var length = UInt32(word(4, 4))
        var target = word(8, 8)
        if control & Control.select != 0 { select(UInt16(control >> 16)) }
        let reading = control & Control.read != 0
        let writing = !reading && control & Control.write != 0
        if !reading, !writing, control & Control.skip == 0 { length = 0 }
        var failed = false
        while length > 0, !failed {
            let left = offset < current.count ? current.count - offset : 0
            // Past the item's end: the rest reads as zeros, and a skip moves nothing.
            let n = left == 0 ? Int(length) : min(Int(length), left)
            if writing {
                failed = true
            } else if reading {
                if let host = Self.writable(memory, target, n) {
                    if left == 0 {
                        memset(host, 0, n)
                    } else {
                        current.withUnsafeBytes { _ = memcpy(host, $0.baseAddress! + offset, n) }
                    }
                } else {
                    failed = true
                }
            }
            if left > 0 { offset += n }
            target &+= UInt64(n)
            length -= UInt32(n)
        }
        // A descriptor in guest ROM was read; its answer is dropped, as a ROM drops writes.
        if let host = Self.writable(memory, address, 4) { host.storeBytes(of: (failed ? Control.error : 0).bigEndian, as: UInt32.self) }
    }

    /// Where the host may write [gpa, gpa+count) for the guest: inside one RAM region that
    /// the guest can write (ROM's host mapping is writable; the guest's view is not).
    static func writable(_ memory: GuestMemory, _ gpa: UInt64, _ count: Int) -> UnsafeMutableRawPointer? {
        guard memory.region(containing: gpa)?.readOnly == false else { return nil }
        return try? memory.hostPointer(gpa, length: count)
    }
}
