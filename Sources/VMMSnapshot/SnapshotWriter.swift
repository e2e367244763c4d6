import Glibc
import VMMKit
import VMMPaging

/// A device's or plugin's own state, saved next to the VM's (`device` lines).
public struct DeviceState: Sendable, Equatable {
    public var name: String
    public var version: UInt32
    public var bytes: [UInt8]
    public init(name: String, version: UInt32, bytes: [UInt8]) {
        self.name = name
        self.version = version
        self.bytes = bytes
    }
}

/// Writes a snapshot directory: into `DIR.partial-PID` first, renamed to `DIR` only
/// when every file is written and synced, so `DIR` either is a whole snapshot or does
/// not exist. An existing `DIR` is never overwritten.
public enum SnapshotWriter {
    public struct Summary: Sendable, Equatable {
        /// Bytes of guest memory and how many of them were written (non-zero pages).
        public var memoryBytes: UInt64
        public var dataBytes: UInt64
    }

    /// The directory a snapshot to `given` is written as: "snap/" and "snap//" name the
    /// folder "snap". The partial name is built from it, and "snap/.partial-PID" lay
    /// inside a folder that did not exist (the run's state lost).
    public static func directory(_ given: String) -> String {
        var dir = given
        while dir.utf8.count > 1, dir.utf8.last == UInt8(ascii: "/") { dir.removeLast() }
        return dir
    }

    @discardableResult
    public static func write(_ state: VMState, memory: GuestMemory, devices: [DeviceState] = [],
                             workingSet: [UInt64]? = nil, pagers: [DemandPager] = [], to given: String) throws(SnapshotError) -> Summary {
        let dir = directory(given)
        guard !SnapshotFiles.exists(dir) else { throw .refused("\(dir) already exists; a snapshot never overwrites one") }
        var seen = Set<String>()
        for d in devices {
            guard seen.insert(d.name).inserted else { throw .refused("two devices save state under the name '\(d.name)'") }
            // What the reader would refuse is never written.
            guard SnapshotManifest.isDeviceName(d.name) else {
                throw .refused("device name '\(d.name)' cannot be saved: letters, digits, '.', '_', '-', at most 51 bytes")
            }
            guard d.bytes.count <= SnapshotManifest.maxStateFileSize else {
                throw .refused("device '\(d.name)' has \(d.bytes.count) bytes of state; a snapshot holds at most \(SnapshotManifest.maxStateFileSize) a device")
            }
        }
        let partial = "\(dir).partial-\(getpid())"
        // The guest's whole memory and registers: its owner's only (0700, files 0600),
        // whatever the umask; sharing a snapshot is a `chmod` the user chooses.
        guard mkdir(partial, 0o700) == 0 else { throw SnapshotFiles.systemError("mkdir of", partial) }
        do throws(SnapshotError) {
            var manifest = SnapshotManifest()
            manifest.vcpuCount = state.vcpus.count
            manifest.capabilities = state.requiredCapabilities.map(\.rawValue)
            manifest.regions = state.regions
            manifest.memorySize = state.regions.map { $0.fileOffset + $0.size }.max() ?? 0
            let summary = try writeMemory(state.regions, memory, pagers: pagers, size: manifest.memorySize, to: partial + "/" + SnapshotManifest.memoryFileName,
                                          sums: partial + "/" + MemorySums.fileName)
            func put(_ name: String, _ bytes: [UInt8]) throws(SnapshotError) -> SnapshotManifest.FileEntry {
                try SnapshotFiles.create(partial + "/" + name, bytes)
                return .init(name: name, size: UInt64(bytes.count), checksum: bytes.withUnsafeBytes(fnv1a64))
            }
            manifest.stateFiles.append(try put("vm.state", state.encodedDevices()))
            for (i, v) in state.vcpus.enumerated() { manifest.stateFiles.append(try put("vcpu\(i).state", v.encoded())) }
            for d in devices {
                manifest.devices.append(.init(name: d.name, version: d.version, file: try put(SnapshotManifest.deviceFileName(d.name), d.bytes)))
            }
            if let workingSet {
                var w = ByteWriter()
                w.append(UInt32(workingSet.count))
                for gpa in workingSet { w.append(gpa) }
                manifest.workingSet = try put("working-set", w.bytes)
            }
            // The reader's own checks, for the limits the checks above do not name
            // (regions, the state files' sum).
            try SnapshotFiles.create(partial + "/manifest", try manifest.textReadingBack("it", path: partial + "/manifest"))
            guard rename(partial, dir) == 0 else { throw SnapshotFiles.systemError("rename to", dir) }
            return summary
        } catch {
            SnapshotFiles.removeTree(partial)
            throw error
        }
    }

    /// Guest memory, sparse: runs of non-zero pages are written, zero pages left as
    /// holes (the file is sized first, so a hole reads back as zeros). Pages the kernel
    /// says were never touched are skipped without being read (`RegionPages`), so a
    /// large, mostly untouched guest costs what it holds, not its size. In a region a
    /// pager serves (a lazily restored VM, RAM a memory-fault plugin pages in), a page
    /// not paged in yet is read from the pager's source instead of being faulted in:
    /// from the `pagers` given for the region, else from the live pagers on its mapping
    /// (`DemandPager.pagers(serving:)`).
    /// Each page written gets its entry in `sums` (`MemorySums`), sparse the same way.
    static func writeMemory(_ regions: [RegionLayout], _ memory: GuestMemory, pagers: [DemandPager], size: UInt64,
                            to path: String, sums sumsPath: String) throws(SnapshotError) -> Summary {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SnapshotFiles.systemError("create of", path) }
        defer { close(fd) }
        guard ftruncate(fd, off_t(size)) == 0 else { throw SnapshotFiles.systemError("ftruncate of", path) }
        let sumsFD = open(sumsPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard sumsFD >= 0 else { throw SnapshotFiles.systemError("create of", sumsPath) }
        defer { close(sumsFD) }
        guard let sumsSize = MemorySums.fileSize(memorySize: size), ftruncate(sumsFD, off_t(sumsSize)) == 0 else {
            throw SnapshotFiles.systemError("ftruncate of", sumsPath)
        }
        let page = Int(GuestMemory.pageSize)
        let zero = UnsafeMutableRawPointer.allocate(byteCount: page, alignment: page)
        defer { zero.deallocate() }
        memset(zero, 0, page)
        let sourceRun = 256
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: sourceRun * page, alignment: page)
        defer { buffer.deallocate() }
        var data: UInt64 = 0
        /// Writes the non-zero pages among `count` pages at `base` to `offset` onwards.
        func writeNonZero(_ base: UnsafeRawPointer, pages count: Int, at offset: UInt64) throws(SnapshotError) {
            var runStart: Int? = nil
            for p in 0...count {
                let isData = p < count && memcmp(base + p * page, zero, page) != 0
                if isData, runStart == nil { runStart = p }
                if !isData, let start = runStart {
                    let bytes = (p - start) * page
                    try SnapshotFiles.writeAll(fd, base + start * page, bytes, at: offset + UInt64(start * page), path: path)
                    let entries = MemorySums.entries(base + start * page, pages: p - start)
                    let failed: SnapshotError? = entries.withUnsafeBytes { e in
                        do throws(SnapshotError) {
                            try SnapshotFiles.writeAll(sumsFD, e.baseAddress!, e.count, at: (offset / UInt64(page) + UInt64(start)) * 8, path: sumsPath)
                            return nil
                        } catch { return error }
                    }
                    if let failed { throw failed }
                    data += UInt64(bytes)
                    runStart = nil
                }
            }
        }
        enum Place: Equatable { case hole, mapping, source(Int) }
        for layout in regions {
            guard let region = memory.regions.first(where: { $0.name == layout.name }), region.size == layout.size else {
                throw .refused("memory region '\(layout.name)' changed while the snapshot was taken")
            }
            // The pagers given, else the live ones on this mapping: a page they have not
            // paged in is missing from memory, yet not zero.
            let given = pagers.filter { $0.region.name == region.name && $0.region.hostAddress == region.hostAddress }
            let serving = given.isEmpty ? DemandPager.pagers(serving: region) : given
            let mayHoldData = RegionPages.mayHoldData(region)
            let pages = mayHoldData.count
            // A paged page absent from memory holds what the source says: read it from
            // there. (If the pager installed it since the kernel was asked, it holds the
            // same bytes: the vCPUs are paused.) Other absent pages are demand-zero.
            func place(_ p: Int) -> Place {
                if mayHoldData[p] { return .mapping }
                let gpa = region.guestAddress + UInt64(p * page)
                guard let index = serving.firstIndex(where: { $0.isPaged(gpa: gpa) }) else { return .hole }
                return .source(index)
            }
            var p = 0
            while p < pages {
                let kind = place(p)
                var q = p + 1
                while q < pages, kind == .hole || kind == .mapping || q - p < sourceRun, place(q) == kind { q += 1 }
                let offset = layout.fileOffset + UInt64(p * page)
                switch kind {
                case .hole: break
                case .mapping: try writeNonZero(region.hostAddress + p * page, pages: q - p, at: offset)
                case let .source(index):
                    let pager = serving[index]
                    let run = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<((q - p) * page)])
                    do {
                        try pager.source.readPages(at: region.guestAddress + UInt64(p * page), into: run, for: PageRequest(vcpu: nil, access: []))
                    } catch {
                        throw .refused("pages of region '\(region.name)' not paged in yet could not be read from \(pager.source.name): \(error)")
                    }
                    try writeNonZero(UnsafeRawPointer(run.baseAddress!), pages: q - p, at: offset)
                }
                p = q
            }
        }
        guard fsync(fd) == 0 else { throw SnapshotFiles.systemError("fsync of", path) }
        guard fsync(sumsFD) == 0 else { throw SnapshotFiles.systemError("fsync of", sumsPath) }
        return Summary(memoryBytes: size, dataBytes: data)
    }
}
