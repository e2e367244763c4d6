/// The few AML (ACPI Machine Language, ACPI 6.5 chapter 20) encodings the DSDT's device
/// descriptions need: scopes, devices, named integers, strings, buffers and packages, and
/// resource template buffers (chapter 6.4) of I/O ports, IRQs, DMA channels and fixed
/// memory ranges. Each returns the
/// bytes of one term; a term's body is the concatenation of its terms.
enum AML {
    /// DefScope: `Scope(name) { body }`.
    static func scope(_ name: String, _ body: [UInt8]) -> [UInt8] {
        [0x10] + package(nameString(name) + body)
    }

    /// DefDevice: `Device(name) { body }`.
    static func device(_ name: String, _ body: [UInt8]) -> [UInt8] {
        [0x5b, 0x82] + package(nameSeg(name) + body)
    }

    /// DefName: `Name(name, value)`, `value` one data object's bytes.
    static func name(_ name: String, _ value: [UInt8]) -> [UInt8] {
        [0x08] + nameSeg(name) + value
    }

    /// An integer in its shortest encoding: ZeroOp, OneOp, or a Byte, Word, DWord or QWord
    /// constant.
    static func integer(_ v: UInt64) -> [UInt8] {
        switch v {
        case 0: [0x00]
        case 1: [0x01]
        case ...0xff: [0x0a, UInt8(v)]
        case ...0xffff: [0x0b] + le(UInt16(v))
        case ...0xffff_ffff: [0x0c] + le(UInt32(v))
        default: [0x0e] + le(v)
        }
    }

    /// A string constant: printable ASCII, NUL-terminated.
    static func string(_ s: String) -> [UInt8] {
        [0x0d] + Array(s.utf8) + [0]
    }

    /// `EISAID("PNP0303")`: three upper-case letters in 5 bits each, then four hex digits,
    /// stored big-endian as a DWord constant (what ASL compilers emit).
    static func eisaID(_ id: String) -> [UInt8] {
        let c = Array(id.utf8)
        precondition(c.count == 7, "an EISA ID is 3 letters and 4 hex digits")
        let vendor = (UInt16(c[0] - 0x40) << 10) | (UInt16(c[1] - 0x40) << 5) | UInt16(c[2] - 0x40)
        let product = c[3...].reduce(UInt16(0)) { $0 << 4 | UInt16(hexValue($1)) }
        return [0x0c, UInt8(vendor >> 8), UInt8(vendor & 0xff), UInt8(product >> 8), UInt8(product & 0xff)]
    }

    /// DefBuffer holding a resource template: `descriptors` then the end tag (checksum 0:
    /// "treat as correct", as ASL compilers write it).
    static func resources(_ descriptors: [[UInt8]]) -> [UInt8] {
        buffer(descriptors.flatMap { $0 } + [0x79, 0x00])
    }

    /// DefBuffer: `Buffer() { bytes }`.
    static func buffer(_ bytes: [UInt8]) -> [UInt8] {
        [0x11] + package(integer(UInt64(bytes.count)) + bytes)
    }

    /// DefPackage: `Package() { elements }`, each one data object's bytes (at most 255).
    static func dataPackage(_ elements: [[UInt8]]) -> [UInt8] {
        precondition(elements.count <= 255, "a Package of \(elements.count) elements needs a VarPackage")
        return [0x12] + package([UInt8(elements.count)] + elements.flatMap { $0 })
    }

    /// `DMA(Compatibility, NotBusMaster, Transfer8) { channel }`: an ISA DMA channel.
    static func dma(_ channel: UInt8) -> [UInt8] {
        [0x2a, 1 << (channel & 7), 0x00]
    }

    /// `IO(Decode16, port, port, alignment, length)`: a fixed range of `length` ports.
    static func io(_ port: UInt16, alignment: UInt8, length: UInt8) -> [UInt8] {
        [0x47, 0x01] + le(port) + le(port) + [alignment, length]
    }

    /// `IRQNoFlags() { irq }`: an ISA IRQ, edge-triggered, active high.
    static func irq(_ irq: UInt8) -> [UInt8] {
        [0x22] + le(UInt16(1) << UInt16(irq & 15))
    }

    /// `Memory32Fixed(ReadOnly or ReadWrite, base, length)`.
    static func memory32Fixed(_ base: UInt32, length: UInt32, writable: Bool) -> [UInt8] {
        [0x86, 0x09, 0x00, writable ? 1 : 0] + le(base) + le(length)
    }

    /// PkgLength and `body`: the length counts its own bytes (1 to 4: 6 bits in one, else
    /// 4 bits in the first and 8 in each of the others).
    static func package(_ body: [UInt8]) -> [UInt8] {
        if body.count + 1 < 0x40 { return [UInt8(body.count + 1)] + body }
        for extra in 1...3 {
            let total = body.count + 1 + extra
            guard total < 1 << (4 + 8 * extra) else { continue }
            var lead = [UInt8(extra << 6) | UInt8(total & 0xf)]
            for i in 0..<extra { lead.append(UInt8(truncatingIfNeeded: total >> (4 + 8 * i))) }
            return lead + body
        }
        preconditionFailure("an AML package of \(body.count) bytes is past PkgLength's 2^28")
    }

    /// A NameSeg: four characters, padded with '_'.
    static func nameSeg(_ name: String) -> [UInt8] {
        let c = Array(name.utf8)
        precondition(c.count >= 1 && c.count <= 4, "a NameSeg is 1 to 4 characters")
        return c + [UInt8](repeating: 0x5f, count: 4 - c.count)
    }

    /// A NameString: an optional root prefix (`\`) and one NameSeg.
    static func nameString(_ name: String) -> [UInt8] {
        name.hasPrefix("\\") ? [0x5c] + nameSeg(String(name.dropFirst())) : nameSeg(name)
    }

    private static func hexValue(_ c: UInt8) -> UInt8 {
        switch c {
        case 0x30...0x39: c - 0x30
        case 0x41...0x46: c - 0x41 + 10
        default: preconditionFailure("an EISA ID's product number is 4 upper-case hex digits")
        }
    }
}
