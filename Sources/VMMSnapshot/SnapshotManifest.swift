import VMMKit

/// The `manifest` file: line-oriented text, one item per line, fields separated by one
/// space, last line `end` (a manifest cut short is refused). Docs/SnapshotFormat.md.
public struct SnapshotManifest: Sendable, Equatable {
    public static let magic = "vmmkit-snapshot"
    /// 2 adds `memory.sums` (`MemorySums`); 1 is still read, its memory unchecked.
    public static let formatVersion = 2
    public static let maxSize = 1 << 20
    public static let memoryFileName = "memory.bin"

    /// A state file and what it must contain.
    public struct FileEntry: Sendable, Equatable {
        public var name: String
        public var size: UInt64
        public var checksum: UInt64
    }

    /// A device or plugin's own state blob (`device NAME VERSION FILE SIZE CHECKSUM`).
    public struct DeviceEntry: Sendable, Equatable {
        public var name: String
        public var version: UInt32
        public var file: FileEntry
    }

    public var version = formatVersion
    public var vcpuCount = 0
    public var capabilities: [String] = []
    public var regions: [RegionLayout] = []
    public var memorySize: UInt64 = 0
    /// Whether `memory.sums` checks the memory file's pages (format 2: always).
    public var memorySums = true
    /// `vm.state` then `vcpu0.state`, `vcpu1.state`, ...
    public var stateFiles: [FileEntry] = []
    public var devices: [DeviceEntry] = []
    /// Guest-physical pages the guest touched first after a restore (prefetch set).
    public var workingSet: FileEntry?

    func text() -> String {
        var lines = ["\(Self.magic) \(version)", "vcpus \(vcpuCount)"]
        for c in capabilities { lines.append("capability \(c)") }
        for r in regions {
            lines.append("region \(r.name) \(hex(r.guestAddress)) \(hex(r.size)) \(Self.backingName(r.backing)) \(r.readOnly ? "ro" : "rw") \(hex(r.fileOffset))")
        }
        lines.append("memory \(Self.memoryFileName) \(hex(memorySize))")
        if memorySums { lines.append("memory-sums \(MemorySums.fileName)") }
        for f in stateFiles { lines.append("state \(f.name) \(f.size) \(hex(f.checksum))") }
        for d in devices { lines.append("device \(d.name) \(d.version) \(d.file.name) \(d.file.size) \(hex(d.file.checksum))") }
        if let w = workingSet { lines.append("working-set \(w.name) \(w.size) \(hex(w.checksum))") }
        lines.append("end")
        return lines.joined(separator: "\n") + "\n"
    }

    static func backingName(_ b: MemoryRegion.Backing) -> String {
        switch b {
        case .anonymous: "anonymous"
        case .memfd: "memfd"
        case .guestMemfd: "guest_memfd"
        }
    }

    /// Parses and checks a manifest: every field, every number (no overflow), names
    /// (no path separators), the regions against each other and the memory file.
    static func parse(_ bytes: [UInt8], path: String) throws(SnapshotError) -> SnapshotManifest {
        func bad(_ line: Int, _ message: String) -> SnapshotError { .invalid(path: path, "line \(line): \(message)") }
        guard bytes.count <= maxSize else { throw .invalid(path: path, "\(bytes.count) bytes; a manifest has at most \(maxSize)") }
        guard let text = String(validating: bytes, as: UTF8.self) else { throw .invalid(path: path, "not UTF-8 text") }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard let first = lines.first, first.hasPrefix(Self.magic + " ") else {
            throw .invalid(path: path, "not a VMMKit snapshot manifest (first line is not '\(Self.magic) VERSION')")
        }
        guard let version = UInt32(plainDecimal: first.dropFirst(Self.magic.count + 1)).map(Int.init) else { throw bad(1, "format version \(first.dropFirst(Self.magic.count + 1).quotedForMessage) is not a number") }
        guard (1...formatVersion).contains(version) else {
            throw .incompatible(path: path, "format version \(version); this VMMKit reads versions 1 to \(formatVersion)")
        }
        var m = SnapshotManifest()
        m.version = version
        m.memorySums = false
        var ended = false
        var sawVCPUs = false, sawMemory = false
        var totalBytes: UInt64 = 0
        var deviceNames = Set<String>()
        for (i, line) in lines.enumerated().dropFirst() {
            let n = i + 1
            if ended {
                guard line.isEmpty, i == lines.count - 1 else { throw bad(n, "text after 'end'") }
                continue
            }
            if line.isEmpty, i == lines.count - 1 { continue }  // after the last newline
            let f = line.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
            func count(_ want: Int) throws(SnapshotError) {
                guard f.count == want else { throw bad(n, "\(f[0].quotedForMessage) takes \(want - 1) fields, found \(f.count - 1)") }
            }
            func number(_ s: String, _ what: String) throws(SnapshotError) -> UInt64 {
                guard let value = UInt64(plainNumber: s) else { throw bad(n, "\(what) \(s.quotedForMessage) is not a number that fits 64 bits") }
                return value
            }
            func name(_ s: String, _ what: String) throws(SnapshotError) -> String {
                guard Self.isPlainName(s) else {
                    throw bad(n, "\(what) \(s.quotedForMessage) is not a plain name (letters, digits, '.', '_', '-'; at most 64)")
                }
                return s
            }
            func file(_ nameField: String, _ sizeField: String, _ sumField: String) throws(SnapshotError) -> FileEntry {
                let size = try number(sizeField, "size")
                guard size <= UInt64(Self.maxStateFileSize) else { throw bad(n, "state file size \(size) exceeds \(Self.maxStateFileSize)") }
                // Every file listed is read into memory whole: their sum is bounded too.
                totalBytes += size // never past maxStateBytes + 16 MiB (checked next): no overflow
                guard totalBytes <= UInt64(Self.maxStateBytes) else {
                    throw bad(n, "the files listed so far hold \(totalBytes) bytes; a snapshot's state files hold at most \(Self.maxStateBytes)")
                }
                return FileEntry(name: try name(nameField, "file name"), size: size, checksum: try number(sumField, "checksum"))
            }
            switch f[0] {
            case "vcpus":
                try count(2)
                let v = try number(f[1], "vCPU count")
                guard v >= 1, v <= 1024, !sawVCPUs else { throw bad(n, "vCPU count \(v) (1...1024, once)") }
                m.vcpuCount = Int(v)
                sawVCPUs = true
            case "capability":
                try count(2)
                guard StateCapability(rawValue: f[1]) != nil else { throw .incompatible(path: path, "line \(n): unknown capability \(f[1].quotedForMessage)") }
                m.capabilities.append(f[1])
            case "region":
                try count(7)
                let backing: MemoryRegion.Backing
                switch f[4] {
                case "anonymous": backing = .anonymous
                case "memfd": backing = .memfd
                case "guest_memfd": backing = .guestMemfd
                default: throw bad(n, "region backing \(f[4].quotedForMessage) (anonymous, memfd, guest_memfd)")
                }
                guard f[5] == "ro" || f[5] == "rw" else { throw bad(n, "region access \(f[5].quotedForMessage) (ro or rw)") }
                guard m.regions.count < Self.maxRegions else { throw bad(n, "more than \(Self.maxRegions) regions") }
                m.regions.append(RegionLayout(name: try name(f[1], "region name"), guestAddress: try number(f[2], "guest address"),
                                              size: try number(f[3], "region size"), backing: backing, readOnly: f[5] == "ro",
                                              fileOffset: try number(f[6], "file offset")))
            case "memory":
                try count(3)
                guard f[1] == Self.memoryFileName, !sawMemory else { throw bad(n, "memory file \(f[1].quotedForMessage) (expected \(Self.memoryFileName), once)") }
                m.memorySize = try number(f[2], "memory size")
                sawMemory = true
            case "memory-sums":
                try count(2)
                guard version >= 2, f[1] == MemorySums.fileName, !m.memorySums else {
                    throw bad(n, "memory sums \(f[1].quotedForMessage) (expected \(MemorySums.fileName), once, from format 2)")
                }
                m.memorySums = true
            case "state":
                try count(4)
                m.stateFiles.append(try file(f[1], f[2], f[3]))
            case "device":
                try count(6)
                let v = try number(f[2], "device state version")
                guard v <= UInt64(UInt32.max) else { throw bad(n, "device state version \(v) exceeds 32 bits") }
                let device = try name(f[1], "device name")
                guard deviceNames.insert(device).inserted else { throw bad(n, "device '\(device)' appears twice") }
                // As the writer names it: one file per device, never shared.
                guard f[3] == Self.deviceFileName(device) else {
                    throw bad(n, "device '\(device)' has file \(f[3].quotedForMessage); its file is \(Self.deviceFileName(device))")
                }
                m.devices.append(DeviceEntry(name: device, version: UInt32(v), file: try file(f[3], f[4], f[5])))
            case "working-set":
                try count(4)
                guard m.workingSet == nil else { throw bad(n, "working-set appears twice") }
                m.workingSet = try file(f[1], f[2], f[3])
            case "end":
                try count(1)
                ended = true
            default:
                throw bad(n, "unknown item \(f[0].quotedForMessage)")
            }
        }
        guard ended else { throw .invalid(path: path, "no 'end' line (truncated?)") }
        guard sawVCPUs, sawMemory else { throw .invalid(path: path, "missing '\(sawVCPUs ? "memory" : "vcpus")' line") }
        guard m.memorySums || version < 2 else { throw .invalid(path: path, "missing 'memory-sums' line (format 2)") }
        guard !m.memorySums || MemorySums.fileSize(memorySize: m.memorySize) != nil else {
            throw .invalid(path: path, "memory size \(hex(m.memorySize)) is not a multiple of 4 KiB")
        }
        let wanted = ["vm.state"] + (0..<m.vcpuCount).map { "vcpu\($0).state" }
        let names = m.stateFiles.map(\.name)
        guard names == wanted else {
            // The first difference, not both lists: with 1024 vCPUs they fill 15 KB.
            let i = zip(names, wanted).prefix { $0 == $1 }.count
            let found = i < names.count ? "'\(names[i])'" : "missing", expected = i < wanted.count ? "'\(wanted[i])'" : "none"
            throw .invalid(path: path, "state file \(i + 1) is \(found), expected \(expected) "
                + "(vm.state, then vcpu0.state to vcpu\(m.vcpuCount - 1).state, in order)")
        }
        try m.checkRegions(path: path)
        return m
    }

    /// The manifest's text once the reader's own checks pass on it: writers call it, so
    /// that they never leave a snapshot restore would refuse (`.refused`, naming `what`).
    func textReadingBack(_ what: String, path: String) throws(SnapshotError) -> [UInt8] {
        let text = Array(self.text().utf8)
        do { _ = try Self.parse(text, path: path) } catch {
            guard case let .invalid(_, why) = error else { throw error }
            throw .refused("\(what) would not read back: \(why)")
        }
        return text
    }

    static let maxStateFileSize = 16 << 20
    /// All state, device and working-set files of one snapshot together (each is read
    /// whole into memory at restore).
    static let maxStateBytes = 256 << 20
    /// Regions of one snapshot (checked pairwise for overlaps).
    /// A VM has a few regions (RAM below the PCI hole, above 4 GiB, an embedder's few
    /// more); each one costs its restore a memory slot and a dispatch range. 4096 took a
    /// restore minutes (the tables' costs grew with the square of the count each time).
    static let maxRegions = 512

    /// A name a manifest may hold: letters, digits, '.', '_', '-', at most 64 bytes,
    /// never "." or "..", so that no name points outside the snapshot's directory.
    public static func isPlainName(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 64 && s != "." && s != ".."
            && s.utf8.allSatisfy { $0 == 0x2d || $0 == 0x2e || $0 == 0x5f || (0x30...0x39).contains($0) || (0x41...0x5a).contains($0) || (0x61...0x7a).contains($0) }
    }

    /// The file that holds device `name`'s blob.
    static func deviceFileName(_ name: String) -> String { "device-\(name).state" }

    /// Whether `name` can name a device in a snapshot: a plain name whose file's name
    /// (`device-NAME.state`) is plain too, so at most 51 bytes.
    public static func isDeviceName(_ name: String) -> Bool { isPlainName(name) && isPlainName(deviceFileName(name)) }

    /// Regions: non-empty, page aligned, inside the memory file, not overlapping in the
    /// guest or in the file; all arithmetic overflow-checked.
    func checkRegions(path: String) throws(SnapshotError) {
        guard !regions.isEmpty else { throw .invalid(path: path, "no memory regions") }
        let page = GuestMemory.pageSize
        var spans: [(String, UInt64, UInt64, UInt64)] = []
        for r in regions {
            guard r.size > 0, r.size % page == 0, r.guestAddress % page == 0, r.fileOffset % page == 0 else {
                throw .invalid(path: path, "region '\(r.name)': address \(hex(r.guestAddress)), size \(hex(r.size)) and file offset \(hex(r.fileOffset)) must be non-zero multiples of 4 KiB")
            }
            let (gEnd, gOver) = r.guestAddress.addingReportingOverflow(r.size)
            let (fEnd, fOver) = r.fileOffset.addingReportingOverflow(r.size)
            guard !gOver, !fOver, fEnd <= memorySize else {
                throw .invalid(path: path, "region '\(r.name)' at file offset \(hex(r.fileOffset)) + \(hex(r.size)) lies outside the \(hex(memorySize))-byte memory file")
            }
            for (other, g, e, f) in spans {
                if r.guestAddress < e && g < gEnd { throw .invalid(path: path, "regions '\(r.name)' and '\(other)' overlap in guest memory") }
                if r.fileOffset < f + (e - g) && f < fEnd { throw .invalid(path: path, "regions '\(r.name)' and '\(other)' overlap in the memory file") }
                if r.name == other { throw .invalid(path: path, "two regions named '\(other)'") }
            }
            spans.append((r.name, r.guestAddress, gEnd, r.fileOffset))
        }
    }
}
