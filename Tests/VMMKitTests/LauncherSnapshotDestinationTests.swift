import Foundation
import Testing
import VMMKit

/// Where `--snapshot-on-stop` may write, checked before the guest runs.
extension LauncherSnapshotTests {
    @Test("--snapshot-on-stop into a directory that exists, or a folder that does not, is refused before the guest runs")
    func destinationCheckedFirst() throws {
        let dir = try tempDir("destination")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let console = dir + "/console.txt"
        // The counter guest prints from its first instructions: an empty console shows it never ran.
        let exists = try VMMProcess.run(["run", Self.counter, "--serial", "file:\(console)", "--max-seconds", "5", "--snapshot-on-stop", dir])
        #expect(exists.status == 24)
        #expect(exists.stderr == "vmm: --snapshot-on-stop '\(dir)': exists already; a snapshot never overwrites one\n", "\(exists.stderr)")
        let noFolder = try VMMProcess.run(["run", Self.counter, "--serial", "file:\(console)", "--max-seconds", "5",
                                           "--snapshot-on-stop", dir + "/missing/snap"])
        #expect(noFolder.status == 24)
        #expect(noFolder.stderr == "vmm: --snapshot-on-stop '\(dir)/missing/snap': its folder '\(dir)/missing' cannot be used: No such file or directory\n",
                "\(noFolder.stderr)")
        #expect(!FileManager.default.fileExists(atPath: console) || read(console).isEmpty, "the guest ran: \(read(console).prefix(40))")
        // A launcher state no snapshot can keep (a newline in the console's path) was found only at the run's end.
        let newline = dir + "/con\nsole.txt", snap = dir + "/snap"
        let unsaveable = try VMMProcess.run(["run", Self.counter, "--serial", "file:\(newline)", "--max-seconds", "5", "--snapshot-on-stop", snap])
        #expect(unsaveable.status == 24 && access(newline, F_OK) != 0 && access(snap, F_OK) != 0, "the guest ran: \(unsaveable.status)")
        #expect(unsaveable.stderr == "vmm: cannot snapshot: the console path \("file:\(newline)".quotedForMessage) holds a newline, which the launcher state cannot keep\n")
    }

    @Test("--snapshot-on-stop DIR// (trailing slashes) saves into DIR and restores; it was lost at the run's end, or refused")
    func trailingSlash() throws {
        let dir = try tempDir("slash")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let out = dir + "/before.txt"
        let r = try VMMProcess.run(["run", Self.counter, "--serial", "file:\(out)", "--max-seconds", "0.5", "--snapshot-on-stop", dir + "/snap//"])
        #expect(r.status == 22, "stderr: \(r.stderr)")
        #expect(FileManager.default.fileExists(atPath: dir + "/snap/manifest"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["before.txt", "snap"])
        let after = dir + "/after.txt"
        let restored = try VMMProcess.run(["restore", dir + "/snap/", "--serial", "file:\(after)"])
        #expect(restored.status == 11, "stderr: \(restored.stderr)")
        #expect(read(out) + read(after) == Self.fullOutput)
    }
}
