import Foundation
import Testing
@testable import VMMSnapshot

/// `vmm restore` of a snapshot whose launcher state does not describe the machine the
/// snapshot holds: refused (status 24) in one line, before anything runs.
@Suite("a launcher state at odds with its snapshot", .serialized, .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct LauncherStateTamperTests {
    /// `file`'s text in the snapshot `dir` replaced by `edit`'s, the manifest's size and
    /// checksum for it to match (what a writer of a hostile snapshot does).
    static func rewrite(_ dir: String, _ file: String, _ edit: (String) -> String) throws {
        let edited = Array(edit(try String(contentsOfFile: dir + "/" + file, encoding: .utf8)).utf8)
        try Data(edited).write(to: URL(fileURLWithPath: dir + "/" + file))
        let manifest = try String(contentsOfFile: dir + "/manifest", encoding: .utf8).split(separator: "\n").map { line in
            let f = line.split(separator: " ").map(String.init)
            guard f.count == 6, f[0] == "device", f[3] == file else { return String(line) }
            return (f[0..<4] + ["\(edited.count)", "0x" + String(edited.withUnsafeBytes(fnv1a64), radix: 16)]).joined(separator: " ")
        }
        try (manifest.joined(separator: "\n") + "\n").write(toFile: dir + "/manifest", atomically: false, encoding: .utf8)
    }

    @Test("the launcher state's memory or irqchip changed: the restore is refused naming both sides")
    func memoryAndIRQChip() throws {
        let dir = try VMMProcess.scratch("tamper", "launcher")
        // A snapshot and its copy, 65 MiB a run: left behind, they filled /tmp over the runs.
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let snap = dir + "/snap"
        let saved = try VMMProcess.run(["run", VMMProcess.guest("counter.elf"), "--memory", "64M", "--max-seconds", "0.3", "--snapshot-on-stop", snap])
        #expect(saved.status == 22, "\(saved.stderr)")
        let cases: [(String, String, String)] = [
            ("\nmemory 67108864\n", "\nmemory 134217728\n",
             "the launcher state says 128 MiB of memory (ram 0x0 0x8000000), the snapshot's RAM regions are ram 0x0 0x4000000"),
            ("\nmemory 67108864\n", "\nmemory \(UInt64(5) << 30)\n",
             "the launcher state says 5 GiB of memory (ram 0x0 0xc0000000, ram-high 0x100000000 0x80000000), the snapshot's RAM regions are ram 0x0 0x4000000"),
            ("\nirqchip kernel\n", "\nirqchip none\n", "the launcher state says no in-kernel irqchip, the snapshot holds one"),
        ]
        for (from, to, why) in cases {
            let copy = dir + "/copy"
            try? FileManager.default.removeItem(atPath: copy)
            try FileManager.default.copyItem(atPath: snap, toPath: copy)
            try Self.rewrite(copy, "device-launcher.state") { text in
                #expect(text.contains(from), "\(text)")
                return text.replacingOccurrences(of: from, with: to)
            }
            let r = try VMMProcess.run(["restore", copy, "--max-seconds", "5"])
            #expect(r.status == 24, "\(to): \(r.stderr)")
            #expect(r.stderr == "vmm: cannot restore \(copy): \(why)\n")
        }
    }
}
