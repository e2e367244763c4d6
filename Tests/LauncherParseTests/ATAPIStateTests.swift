@testable import Launcher
import Testing

/// The CD-ROM drive's `atapi` line in the launcher's snapshot blob (Docs/SnapshotFormat.md).
@Suite("the CD-ROM drive's state in a snapshot")
struct ATAPIStateTests {
    typealias T = ATAPIDriveTests

    /// The line of a drive as after power-on, with `replacing` words swapped in (1-based, `atapi` is 0).
    static func line(_ replacing: [Int: String] = [:]) -> String {
        var words = ATAPIState().blobLine().split(separator: " ").map(String.init)
        for (i, w) in replacing { words[i] = w }
        return "vmm-launcher-devices 1\n" + words.joined(separator: " ") + "\nend\n"
    }

    @Test("a transfer in flight (a reply half read) survives a snapshot into a new drive: the rest, the end's status and reason, the sense and the tray")
    func roundTrip() throws {
        let (d, _) = T.drive()
        T.packet(d, [0x1b, 0, 0, 0, 2]) // tray open
        T.packet(d, [0x00]) // NOT READY
        T.packet(d, [0x03, 0, 0, 0, 18], limit: 8)
        let first = T.data(d, 4)
        let blob = BuiltInDeviceState(atapi: d.saved).encoded()
        let back = try BuiltInDeviceState.decode(blob, version: 1, where: "snap")
        #expect(back.atapi == d.saved)
        let (fresh, levels) = T.drive()
        fresh.restore(try #require(back.atapi))
        #expect(levels.all.isEmpty, "a restore drives no line")
        let rest = T.data(fresh, 4) + T.data(fresh, 8) + T.data(fresh, 2)
        #expect(first + rest == [0xf0, 0, 2, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x3a, 0, 0, 0, 0, 0])
        #expect([T.inb(fresh, 0x172), T.inb(fresh, 0x177)] == [0x03, 0x50])
        T.packet(fresh, [0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8])
        #expect(T.data(fresh, 8)[5] == 1, "the tray is still open")
        // A blob written before the drive was built in has no line: a drive as after a reset.
        let old = try BuiltInDeviceState.decode(Array("vmm-launcher-devices 1\nend\n".utf8), version: 1, where: "snap")
        #expect(old.atapi == nil)
        let devices = BuiltInDevices()
        devices.cdrom = d
        try devices.restore(old)
        #expect(d.saved == ATAPIState())
    }

    @Test("a hostile atapi line is refused in one line naming the field")
    func hostile() {
        let hexBuffer = String(repeating: "00", count: 12)
        let cases: [(String, String)] = [
            (Self.line([1: "0xd0"]), "atapi status 0xd0 (bits other than 0x59)"),
            (Self.line([1: "0x100"]), "atapi status '0x100'"),
            (Self.line([13: "0x0"]), "atapi select 0x0 or slave select 0xa0 (bits 5 and 7 always set)"),
            (Self.line([15: "2"]), "atapi line '2' (0 to 1)"),
            (Self.line([24: "0x10"]), "slave select 0x10"),
            (Self.line([25: "0x6"]), "atapi sense key 0x6 asc 0x0 (not a sense the drive reports)"),
            (Self.line([25: "0x2", 26: "0x20"]), "atapi sense key 0x2 asc 0x20"),
            (Self.line([27: "4"]), "atapi tray '4' (0 to 3)"),
            (Self.line([28: "4"]), "atapi phase '4' (0 to 3)"),
            (Self.line([28: "1"]), "atapi buffer '-' with phase 1"),
            (Self.line([31: hexBuffer]), "atapi buffer of 24 hex digits with phase 0"),
            (Self.line([28: "1", 31: "00"]), "atapi buffer of 2 hex digits with phase 1"),
            (Self.line([28: "3", 31: String(repeating: "ab", count: 513)]), "atapi buffer of 1026 hex digits with phase 3"),
            (Self.line([28: "1", 31: "zz" + String(repeating: "00", count: 11)]), "atapi buffer: not hex at digit 0"),
            (Self.line([28: "1", 31: hexBuffer]), "atapi status 0x50 with phase 1 (0x58 exactly during a transfer)"),
            (Self.line([1: "0x58"]), "atapi status 0x58 with phase 0"),
            (Self.line([1: "0x58", 28: "1", 30: "0xc", 29: "0x1", 31: hexBuffer]), "atapi position 0x1 chunk end 0xc in 12 bytes"),
            (Self.line([1: "0x58", 28: "1", 30: "0xa", 31: hexBuffer]), "atapi position 0x0 chunk end 0xa in 12 bytes"),
            (Self.line([1: "0x58", 28: "3", 29: "0x2", 30: "0x20", 31: "0011"]), "atapi position 0x2 chunk end 0x20 in 2 bytes"),
            (Self.line([29: "0x10000"]), "atapi position '0x10000'"),
            (Self.line([30: "0x2"]), "atapi position 0x0 chunk end 0x2 in 0 bytes"),
            ("vmm-launcher-devices 1\natapi 0x50\nend\n", "a device given twice, or the wrong number of values"),
        ]
        for (text, why) in cases {
            guard case let .failure(error) = BuiltInDeviceStateTests.decode(text) else { Issue.record("accepted: \(text)"); continue }
            #expect(error.status == .snapshot)
            #expect(error.message.hasPrefix("snap: launcher devices: ") && error.message.contains(why), "\(error.message)")
            #expect(!error.message.contains("\n"))
        }
        // A packet half written, and an empty block of a limit of 1, restore.
        #expect((try? BuiltInDeviceStateTests.decode(Self.line([1: "0x58", 28: "1", 29: "0x4", 30: "0xc", 31: hexBuffer])).get()) != nil)
        #expect((try? BuiltInDeviceStateTests.decode(Self.line([1: "0x58", 28: "3", 29: "0x2", 30: "0x2", 31: "0011"])).get()) != nil)
    }

    @Test("a snapshot with the drive's state is refused on a machine without the drive (a plugin took its ports)")
    func presence() throws {
        let state = BuiltInDeviceState(atapi: ATAPIState())
        do {
            try BuiltInDevices().restore(state)
            Issue.record("restored")
        } catch {
            #expect(error.message == "launcher devices: the snapshot has state of the built-in CD-ROM drive (ports 0x170-0x177, 0x376), and this machine has none (a plugin built or removed since?)")
        }
    }
}
