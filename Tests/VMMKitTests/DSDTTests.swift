import Testing
@testable import VMMLoader

/// The DSDT's AML (`DSDT`, `AML`) read back by a small AML reader of the terms it uses
/// (chapter 20 of the ACPI 6.5 specification): each device's name, `_HID`, `_UID`,
/// `_STA` and `_CRS`, as QEMU's `pc` describes the same devices. (ACPICA's `acpiexec`,
/// built outside the repository, loaded the same bytes before the floppy controller's and
/// LPT1's were added: 7 devices, their resources.)
@Suite("the DSDT's device descriptions")
struct DSDTTests {
    enum Value: Equatable { case integer(UInt64), string(String), buffer([UInt8]), package([Value]) }

    /// Devices by path ("\_SB_.KBD_"), each with its named values; and the root's names.
    struct Namespace { var devices: [String: [String: Value]] = [:], root: [String: Value] = [:] }

    /// PkgLength at `at`: (the length, counting itself, and its own size).
    static func pkgLength(_ b: [UInt8], _ at: Int) -> (Int, Int) {
        let extra = Int(b[at] >> 6)
        guard extra > 0 else { return (Int(b[at] & 0x3f), 1) }
        var n = Int(b[at] & 0x0f)
        for i in 0..<extra { n |= Int(b[at + 1 + i]) << (4 + 8 * i) }
        return (n, 1 + extra)
    }

    static func value(_ b: [UInt8], _ at: inout Int) -> Value {
        func le(_ n: Int) -> UInt64 { (0..<n).reduce(0) { $0 | UInt64(b[at + 1 + $1]) << (8 * $1) } }
        let op = b[at]
        switch op {
        case 0x00, 0x01: at += 1; return .integer(UInt64(op))
        case 0x0a: defer { at += 2 }; return .integer(le(1))
        case 0x0b: defer { at += 3 }; return .integer(le(2))
        case 0x0c: defer { at += 5 }; return .integer(le(4))
        case 0x0d:
            let end = b[(at + 1)...].firstIndex(of: 0)!
            defer { at = end + 1 }
            return .string(String(decoding: b[(at + 1)..<end], as: UTF8.self))
        case 0x11, 0x12:
            let (length, size) = pkgLength(b, at + 1)
            var inner = at + 1 + size
            let end = at + 1 + length
            at = end
            if op == 0x12 { // NumElements, then the elements
                var elements: [Value] = []
                inner += 1
                while inner < end { elements.append(value(b, &inner)) }
                #expect(elements.count == Int(b[at - length + size]), "a package's element count")
                return .package(elements)
            }
            guard case let .integer(count) = value(b, &inner), inner + Int(count) == end else { return .package([]) }
            return .buffer(Array(b[inner..<end]))
        default: Issue.record("unexpected AML byte \(op) at \(at)"); at = b.count; return .package([])
        }
    }

    /// The terms in `b[from..<to]`: Name, Scope, Device.
    static func read(_ b: [UInt8], _ from: Int, _ to: Int, path: String, into ns: inout Namespace, device: String?) {
        var at = from
        while at < to {
            switch b[at] {
            case 0x08:
                let name = String(decoding: b[(at + 1)..<(at + 5)], as: UTF8.self)
                at += 5
                let v = value(b, &at)
                if let device { ns.devices[device, default: [:]][name] = v } else { ns.root[name] = v }
            case 0x10, 0x5b:
                let isDevice = b[at] == 0x5b
                #expect(!isDevice || b[at + 1] == 0x82, "ExtOp \(b[at + 1]) is not DeviceOp")
                let start = at + (isDevice ? 2 : 1)
                let (length, size) = pkgLength(b, start)
                var name = start + size
                var prefix = path
                if b[name] == 0x5c { prefix = "\\"; name += 1 }
                let seg = String(decoding: b[name..<(name + 4)], as: UTF8.self)
                let full = prefix.hasSuffix("\\") ? prefix + seg : prefix + "." + seg
                if isDevice { ns.devices[full] = ns.devices[full] ?? [:] }
                read(b, name + 4, start + length, path: full, into: &ns, device: isDevice ? full : device)
                at = start + length
            default:
                Issue.record("unexpected AML byte \(b[at]) at \(at)")
                return
            }
        }
    }

    static func namespace(_ devices: PCFirmware.Devices, hpet: Bool) -> Namespace {
        let body = DSDT.body(devices: devices, hpet: hpet)
        var ns = Namespace()
        read(body, 0, body.count, path: "\\", into: &ns, device: nil)
        return ns
    }

    @Test("PkgLength in one byte below 64, else a lead nibble and 1-3 bytes, counting itself")
    func pkgLengths() {
        for (count, lead) in [(0, [UInt8(1)]), (62, [63]), (63, [0x41, 0x04]), (4093, [0x4f, 0xff]), (4094, [0x81, 0x00, 0x01])] {
            let encoded = AML.package([UInt8](repeating: 0xaa, count: count))
            #expect(Array(encoded.prefix(lead.count)) == lead, "\(count)")
            #expect(Self.pkgLength(encoded, 0) == (count + lead.count, lead.count))
        }
    }

    @Test("EISA IDs as ASL compilers encode them: PNP0A03 is 0x030AD041")
    func eisaIDs() {
        #expect(AML.eisaID("PNP0A03") == [0x0c] + le(UInt32(0x030a_d041)))
        #expect(AML.eisaID("PNP0303") == [0x0c] + le(UInt32(0x0303_d041)))
        #expect(AML.integer(0) == [0] && AML.integer(0xf) == [0x0a, 0xf] && AML.integer(0x1234) == [0x0b, 0x34, 0x12])
    }

    @Test("every device as QEMU's pc describes it: the i8042's keyboard and mouse, COM1, LPT1, the RTC, the floppy controller with drive A, the HPET, fw_cfg with DMA, pvpanic; \\_S5_ at the root")
    func allDevices() {
        let ns = Self.namespace(.all, hpet: true)
        #expect(ns.root == ["_S5_": .package([.integer(0), .integer(0), .integer(0), .integer(0)])])
        let io: (UInt16, UInt8, UInt8) -> [UInt8] = { port, align, length in [0x47, 1] + le(port) + le(port) + [align, length] }
        let end: [UInt8] = [0x79, 0]
        #expect(ns.devices == [
            "\\_SB_.KBD_": ["_HID": .integer(0x0303_d041), "_STA": .integer(0xf),
                            "_CRS": .buffer(io(0x60, 1, 1) + io(0x64, 1, 1) + [0x22, 0x02, 0x00] + end)],
            "\\_SB_.MOU_": ["_HID": .integer(0x130f_d041), "_STA": .integer(0xf), "_CRS": .buffer([0x22, 0x00, 0x10] + end)],
            "\\_SB_.COM1": ["_UID": .integer(1), "_HID": .integer(0x0105_d041), "_STA": .integer(0xf),
                            "_CRS": .buffer(io(0x3f8, 0, 8) + [0x22, 0x10, 0x00] + end)],
            "\\_SB_.LPT1": ["_HID": .integer(0x0004_d041), "_UID": .integer(1), "_STA": .integer(0xf),
                            "_CRS": .buffer(io(0x378, 8, 8) + [0x22, 0x80, 0x00] + end)],
            "\\_SB_.RTC_": ["_HID": .integer(0x000b_d041), "_STA": .integer(0xf), "_CRS": .buffer(io(0x70, 1, 8) + [0x22, 0x00, 0x01] + end)],
            "\\_SB_.FDC0": ["_HID": .integer(0x0007_d041),
                             "_CRS": .buffer(io(0x3f2, 0, 4) + io(0x3f7, 0, 1) + [0x22, 0x40, 0x00] + [0x2a, 0x04, 0x00] + end),
                             "_FDE": .buffer([1, 0, 0, 0] + [UInt8](repeating: 0, count: 12) + [2, 0, 0, 0])],
            "\\_SB_.FDC0.FLPA": ["_ADR": .integer(0),
                                  "_FDI": .package([0, 5, 79, 48, 1, 0xaf, 2, 0x25, 2, 0x12, 0x1b, 0xff, 0x6c, 0xf6, 0x0f, 8].map { .integer($0) })],
            "\\_SB_.HPET": ["_UID": .integer(0), "_HID": .integer(0x0301_d041), "_STA": .integer(0xf),
                            "_CRS": .buffer([0x86, 0x09, 0x00, 0x00] + le(UInt32(0xfed0_0000)) + le(UInt32(0x400)) + end)],
            "\\_SB_.FWCF": ["_HID": .string("QEMU0002"), "_STA": .integer(0xb), "_CRS": .buffer(io(0x510, 1, 0x0c) + end)],
            "\\_SB_.PEVT": ["_HID": .string("QEMU0001"), "_STA": .integer(0xb), "_CRS": .buffer(io(0x505, 1, 1) + end)],
        ])
    }

    @Test("only what the machine has: no devices, no \\_SB scope; --no-hpet leaves the HPET out; without the default plugins no COM1")
    func onlyWhatExists() throws {
        let none = Self.namespace([], hpet: false)
        #expect(none.devices.isEmpty && none.root == ["_S5_": .package([.integer(0), .integer(0), .integer(0), .integer(0)])])
        #expect(DSDT.body(devices: [], hpet: false) == AML.name("_S5_", [0x12, 0x06, 0x04, 0, 0, 0, 0]), "as before devices were described")
        #expect(Self.namespace([.keyboard, .rtc, .fwCfg], hpet: false).devices.keys.sorted() == ["\\_SB_.FWCF", "\\_SB_.KBD_", "\\_SB_.MOU_", "\\_SB_.RTC_"])
        // The launcher's tables with every device and 255 processors still end below SMBIOS.
        let widest = try PCFirmware(processors: 255, devices: .all)
        #expect(PCFirmware.acpiAddress + UInt64(widest.acpiTables.count) <= PCFirmware.smbiosAddress)
    }
}
