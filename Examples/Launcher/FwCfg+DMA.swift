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

    /// A 4-byte write to the register's high half (port 0x514) or low half (0x518, which
    /// starts the transfer), under lock; QEMU's `fw_cfg_dma_mem_valid` takes no other write.
    /// The register is big-endian: the guest writes each half byte-swapped.
    func dmaWrite(high: Bool, _ value: UInt32) {
        if high {
            dmaHigh = value.byteSwapped
        } else {
            let address = UInt64(dmaHigh) << 32 | UInt64(value.byteSwapped)
            dmaHigh = 0
            transfer(descriptor: address)
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
