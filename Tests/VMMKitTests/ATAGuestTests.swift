import Foundation
import Testing

/// QEMU's `-hda` as `vmm run --hda`: an ATA PIO driver written as for QEMU
/// (Examples/GuestImages/qemu/ata.S) identifies the disk, reads, writes and flushes
/// sectors by LBA28, CHS and LBA48, polled and on IRQ 14; the image file holds what the
/// guest wrote; a transfer in flight survives a snapshot and a restore in a new process.
@Suite("vmm --hda (an IDE disk) on real KVM", .serialized, .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct ATAGuestTests {
    static let guest = VMMProcess.guest("ata.elf")
    static let done: Int32 = (0x21 << 1) | 1
    static let sectors = 16

    /// `sectors` sectors, each beginning with "sector N of the disk" and a NUL.
    static func image(_ dir: String, sectors: Int = sectors) throws -> String {
        var bytes: [UInt8] = []
        for n in 0..<sectors {
            let text = Array("sector \(n) of the disk".utf8) + [0]
            bytes += text + [UInt8](repeating: 0x5a, count: 512 - text.count)
        }
        let path = dir + "/disk.img"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    static func sector(_ path: String, _ n: Int) throws -> [UInt8] {
        Array(try Data(contentsOf: URL(fileURLWithPath: path))[n * 512..<(n + 1) * 512])
    }

    /// What the guest prints after IDENTIFY, given how its write ended and what it read back.
    static func rest(write: String, back: String) -> String {
        """
        sector 1 of the disk
        sector 2 of the disk
        after: lba low 03 count 00
        chs: sector 1 of the disk
        ext: sector 2 of the disk
        write: status \(write)
        flush: status 50
        back: \(back)
        past the end: status 41 error 04
        slave: status 00 devchk 55 AA
        secondary: status 50
        irq: status 58 sector 3 of the disk

        """
    }

    /// PCIHost's 00:01.1 in compatibility mode, as the guest finds it by class, then IDENTIFY.
    static let controller = "controller: devfn 09, programming interface 00\n"
    static let identify = controller + "identify: VMMKit HARDDISK" + String(repeating: " ", count: 25) + "| sectors 00000010 lba48 00000010\n"

    func run(_ args: [String]) throws -> VMMProcess.Result { try PluginListingTests.run(args, bound: 120) }

    @Test("the guest identifies the disk, reads by LBA28, CHS and LBA48, writes and flushes a sector, is refused past the end, and takes IRQ 14")
    func readWrite() throws {
        let dir = try VMMProcess.scratch("ata", "rw")
        let disk = try Self.image(dir)
        let r = try run(["run", Self.guest, "--hda", disk])
        #expect(r.stdout == Self.identify + Self.rest(write: "50", back: "written by the guest"))
        #expect(r.stderr == "")
        #expect(r.status == Self.done)
        // In the file: sector 5 as the guest wrote it, its neighbours untouched.
        let written = try Self.sector(disk, 5)
        #expect(Array(written.prefix(21)) == Array("written by the guest".utf8) + [0])
        #expect(Array(try Self.sector(disk, 4).prefix(21)) == Array("sector 4 of the disk\0".utf8))
        #expect(Array(try Self.sector(disk, 6).prefix(21)) == Array("sector 6 of the disk\0".utf8))
    }

    @Test("--hda-readonly (config hdaReadOnly): the guest's write is aborted (status 41) and the file is unchanged")
    func readOnly() throws {
        let dir = try VMMProcess.scratch("ata", "ro")
        let disk = try Self.image(dir)
        let before = try Data(contentsOf: URL(fileURLWithPath: disk))
        chmod(disk, 0o444)
        // --strict-io: every port the driver touches, the secondary channel's too, is a device's.
        let r = try run(["run", Self.guest, "--hda", disk, "--hda-readonly", "--strict-io"])
        #expect(r.stdout == Self.identify + Self.rest(write: "41", back: "sector 5 of the disk"))
        #expect(r.status == Self.done, "stderr: \(r.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: disk)) == before)
        // Without read-only, a file the user cannot write is refused before the guest runs.
        if getuid() != 0 {
            let refused = try run(["run", Self.guest, "--hda", disk])
            #expect(refused.status == 6)
            #expect(refused.stderr == "vmm: --hda: cannot open '\(disk)' for writing: Permission denied\n")
        }
        let config = dir + "/vm.json"
        try Data(#"{"image": "\#(Self.guest)", "hda": "\#(disk)", "hdaReadOnly": true}"#.utf8).write(to: URL(fileURLWithPath: config))
        let viaConfig = try run(["run", "--config", config])
        #expect(viaConfig.stdout == Self.identify + Self.rest(write: "41", back: "sector 5 of the disk"))
        #expect(viaConfig.status == Self.done)
        // Read-only of no disk is refused, not ignored.
        let alone = try run(["run", Self.guest, "--hda-readonly"])
        #expect(alone.stderr == "vmm: --hda-readonly without --hda (a disk image)\n")
        #expect(alone.status == 2)
        try Data(#"{"image": "\#(Self.guest)", "hdaReadOnly": true}"#.utf8).write(to: URL(fileURLWithPath: config))
        let aloneInConfig = try run(["run", "--config", config])
        #expect(aloneInConfig.stderr == "vmm: \(config): 'hdaReadOnly' without 'hda' (a disk image)\n")
        #expect(aloneInConfig.status == 4)
    }

    @Test("an image that is not whole sectors, is empty, missing, a directory or a FIFO is refused in one line, status 6, before the guest runs; without --hda the guest finds no disk")
    func badImages() throws {
        let dir = try VMMProcess.scratch("ata", "bad")
        try Data(repeating: 0, count: 1000).write(to: URL(fileURLWithPath: dir + "/odd.img"))
        try Data().write(to: URL(fileURLWithPath: dir + "/empty.img"))
        mkfifo(dir + "/fifo", 0o600)
        let cases = [
            (dir + "/odd.img", "--hda: '\(dir)/odd.img': 1000 bytes is not a whole number of 512-byte sectors"),
            (dir + "/empty.img", "--hda: '\(dir)/empty.img': an empty file holds no sector"),
            (dir + "/missing.img", "--hda: cannot open '\(dir)/missing.img' for writing: No such file or directory"),
            (dir, "--hda: cannot open '\(dir)' for writing: Is a directory"),
            (dir + "/fifo", "--hda: '\(dir)/fifo': not a regular file (a FIFO)"),
        ]
        for (path, message) in cases {
            let r = try run(["run", Self.guest, "--hda", path])
            #expect(r.status == 6, "\(path)")
            #expect(r.stderr == "vmm: \(message)\n")
            #expect(r.stdout == "")
        }
        // Without --hda the channel is there and empty, as QEMU's pc has it: status 0, no disk.
        for extra in [[], ["--strict-io"]] {
            let none = try run(["run", Self.guest] + extra)
            #expect(none.stdout == Self.controller + "no disk: status 00\n")
            #expect(none.status == (0x22 << 1) | 1, "stderr: \(none.stderr)")
        }
    }

    /// Runs `guest` (on `disk`, if any) with the command line "pause" until its console reads
    /// `printed` (a transfer stopped half-way, the guest waiting for a key), then pauses
    /// it, types the key, snapshots it into `dir`/snap and stops it; the snapshot's path
    /// and its launcher state.
    static func snapshotWaiting(_ guest: String, disk: String?, dir: String, printed: String) throws -> (String, String) {
        let snap = dir + "/snap"
        let (vmm, console, socket) = ControlAPITests.served(["run", guest] + (disk.map { ["--hda", $0] } ?? []) + ["--append", "pause"], in: dir)
        defer { vmm.kill() }
        #expect(eventually { KeyboardTests.printed(console) == printed }, "console: \(KeyboardTests.printed(console))")
        // The key the guest waits for is typed into the paused guest: it waits in the keyboard.
        for command in [["pause"], ["sendkey", "a"], ["snapshot", snap], ["stop"]] {
            let r = try ControlAPITests.ctl([socket] + command)
            #expect(r.status == 0, "\(command): \(r.stderr)")
        }
        #expect(vmm.wait().status == 0)
        return (snap, try String(contentsOfFile: snap + "/device-launcher-devices.state", encoding: .utf8))
    }

    @Test("a read stopped half-way through a sector survives a snapshot: restored in a new process with the image at a new path, the guest reads the rest")
    func snapshotMidTransfer() throws {
        let dir = try VMMProcess.scratch("ata", "snapshot")
        let disk = try Self.image(dir)
        let (snap, saved) = try Self.snapshotWaiting(Self.guest, disk: disk, dir: dir, printed: Self.identify + "reading, waiting for a key\n")
        // Sector 1 in flight at byte 0x100, one more to come, the task file at sector 2.
        #expect(saved.contains("\nata 0x10 0x58 0x0 0x0 0x1 0x2 0x0 0x0 "), "\(saved)")
        #expect(saved.contains(" 0xe0 0x2 2 0x1 0x1 0x100 0 0 736563746f72203120"), "\(saved)")

        // The image is a host file the snapshot names: refused without --trust-snapshot.
        let untrusted = try run(["restore", snap])
        #expect(untrusted.status == 24)
        #expect(untrusted.stderr.contains("its launcher state names the disk image '\(disk)'"), "\(untrusted.stderr)")
        // Another size is another disk.
        let small = dir + "/small.img"
        try Data(repeating: 0, count: 8 * 512).write(to: URL(fileURLWithPath: small))
        let wrongSize = try run(["restore", snap, "--hda", small, "--serial", "stdio"])
        #expect(wrongSize.status == 24)
        #expect(wrongSize.stderr == "vmm: cannot restore \(snap): launcher devices: the snapshot's disk had 16 sectors, the --hda image has 8\n")
        // The image moved: --hda names it, and the guest goes on where it stopped.
        let moved = dir + "/moved.img"
        try FileManager.default.moveItem(atPath: disk, toPath: moved)
        // --hda-readonly keeps the image read-only though the snapshot's machine wrote it:
        // the guest's write is aborted and the file stays as it was.
        let before = try Data(contentsOf: URL(fileURLWithPath: moved))
        let kept = try run(["restore", snap, "--hda", moved, "--hda-readonly", "--serial", "stdio", "--max-seconds", "60"])
        #expect(kept.stdout == Self.rest(write: "41", back: "sector 5 of the disk"))
        #expect(kept.status == Self.done, "\(kept.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: moved)) == before)
        let restored = try run(["restore", snap, "--hda", moved, "--serial", "stdio", "--max-seconds", "60"])
        #expect(restored.stdout == Self.rest(write: "50", back: "written by the guest"))
        #expect(restored.stderr == "")
        #expect(restored.status == Self.done)
        #expect(Array(try Self.sector(moved, 5).prefix(20)) == Array("written by the guest".utf8))
    }

    @Test("--hda to vmm restore of a machine without a disk is refused: a restore cannot add one")
    func restoreCannotAddDisk() throws {
        let dir = try VMMProcess.scratch("ata", "nodisk")
        let disk = try Self.image(dir)
        let guest = try DebugConsoleTests.readsAfterSnapshot()
        let snap = dir + "/snap"
        let saved = try run(["run", guest, "--load-addr", "0x100000", "--max-seconds", "0.3", "--snapshot-on-stop", snap])
        #expect(saved.status == 22, "stderr: \(saved.stderr)")
        let r = try run(["restore", snap, "--hda", disk])
        #expect(r.stderr == "vmm: --hda: the machine in \(snap) has no disk; a restore cannot add one\n")
        #expect(r.status == 2)
    }
}
