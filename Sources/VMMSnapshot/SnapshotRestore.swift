import Glibc
import SystemPackage
import VMMKit
import VMMPaging

/// A VM rebuilt from a snapshot, ready to run once its handlers are registered.
public final class RestoredVM: @unchecked Sendable {
    public let vm: VirtualMachine
    /// Lazy restores: one demand pager per region, serving pages from the memory file.
    public let pagers: [DemandPager]
    public let devices: [DeviceState]

    init(vm: VirtualMachine, pagers: [DemandPager], devices: [DeviceState]) {
        self.vm = vm
        self.pagers = pagers
        self.devices = devices
    }

    /// The state a device saved under `name`, if any.
    public func device(_ name: String) -> DeviceState? { devices.first { $0.name == name } }

    /// Registers the pagers' handlers (and starts their fault routers) on `dispatcher`;
    /// call before starting the vCPUs. No-op for an eager restore.
    public func attach(to dispatcher: ExitDispatcher) throws(SnapshotError) {
        do {
            for pager in pagers { try pager.attach(to: dispatcher, vcpus: vm.vcpus) }
        } catch { throw .system(error) }
    }

    /// Pages fetched by the pagers so far.
    public var pagesFetched: Int { pagers.reduce(0) { $0 + $1.statistics.pagesFetched } }

    public func close() {
        for pager in pagers { pager.close() }
        vm.close()
    }
}

/// lseek(2) whences Glibc does not import without _GNU_SOURCE (linux/fs.h values).
let seekData: Int32 = 3
let seekHole: Int32 = 4

extension SnapshotImage {
    public enum MemoryMode: Sendable, Equatable {
        /// Every non-zero page copied in before the first instruction.
        case eager
        /// Pages fetched from the memory file on first touch, through userfaultfd.
        case lazy
    }

    /// Checks compatibility, builds the VM and its vCPUs from the saved state, and
    /// fills memory (eager) or sets up demand paging (lazy). Nothing on disk changes.
    public func restore(on kvm: KVM, memory mode: MemoryMode = .lazy) throws(SnapshotError) -> RestoredVM {
        try checkCompatibility(with: kvm)
        let vm = try state.makeVM(on: kvm)
        do {
            var pagers: [DemandPager] = []
            for layout in manifest.regions {
                switch mode {
                case .eager:
                    try fill(layout, vm.memory)
                case .lazy:
                    let source = SnapshotMemorySource(image: self, region: layout)
                    do { pagers.append(try DemandPager(memory: vm.memory, region: layout.name, source: source)) } catch { throw SnapshotError.system(error) }
                }
            }
            return RestoredVM(vm: vm, pagers: pagers, devices: devices)
        } catch let error as SnapshotError {
            vm.close()
            throw error
        } catch {
            vm.close()
            throw .refused("\(error)")
        }
    }

    /// Copies the data extents of one region (SEEK_DATA/SEEK_HOLE: holes are zero
    /// pages and stay untouched in fresh memory), each page checked against `memory.sums`;
    /// then a page the sums say held data but that lay in a hole is refused too.
    func fill(_ layout: RegionLayout, _ memory: GuestMemory) throws(SnapshotError) {
        guard let region = memory.regions.first(where: { $0.name == layout.name }) else {
            throw .refused("restored VM has no region '\(layout.name)'")
        }
        let start = layout.fileOffset, end = layout.fileOffset + layout.size
        var pos = start
        var extents: [(UInt64, UInt64)] = [] // copied and checked, in order
        while pos < end {
            let data = lseek(memoryFD, off_t(pos), seekData)
            if data < 0 {
                if errno == ENXIO { break }
                throw SnapshotFiles.systemError("lseek(seekData) in", memoryPath)
            }
            guard UInt64(data) < end else { break }
            var hole = lseek(memoryFD, data, seekHole)
            if hole < 0 { hole = off_t(end) }
            let from = UInt64(data), to = min(UInt64(max(hole, data)), end)
            try readExactly(into: region.hostAddress + Int(from - start), count: Int(to - from), at: from)
            // The writer writes whole pages; a file system reporting a partial page is
            // checked page-wise all the same (the rest of such a page is a hole: zero).
            let first = from & ~(GuestMemory.pageSize - 1), last = min((to + GuestMemory.pageSize - 1) & ~(GuestMemory.pageSize - 1), end)
            if let sums {
                // In runs of at most 4096 pages: the entries read for a run are an array.
                var at = first
                while at < last {
                    let pages = Int(min((last - at) / GuestMemory.pageSize, 4096))
                    try sums.check(region.hostAddress + Int(at - start), pages: pages, at: at)
                    at += UInt64(pages) * GuestMemory.pageSize
                }
                extents.append((first, last))
            }
            pos = to
        }
        // A page with data in the sums, outside every extent copied: the memory file lost it.
        try sums?.forEachDataPage(from: start, to: end) { offset throws(SnapshotError) in
            var lo = 0, hi = extents.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if extents[mid].1 <= offset { lo = mid + 1 } else { hi = mid }
            }
            guard lo < extents.count, extents[lo].0 <= offset else { throw sums!.mismatch(at: offset) }
        }
    }

    func readExactly(into base: UnsafeMutableRawPointer, count: Int, at offset: UInt64) throws(SnapshotError) {
        var done = 0
        while done < count {
            let n = pread(memoryFD, base + done, count - done, off_t(offset) + off_t(done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                if n == 0 { throw .invalid(path: path, "\(SnapshotManifest.memoryFileName) ends at byte \(offset + UInt64(done)) (truncated after opening?)") }
                throw SnapshotFiles.systemError("read of", memoryPath)
            }
            done += n
        }
    }
}

/// The memory file as a `PageSource`: page `gpa` of one region is at
/// `fileOffset + (gpa - guestAddress)`. Holes read as zero pages.
public final class SnapshotMemorySource: PageSource, @unchecked Sendable {
    let image: SnapshotImage
    public let region: RegionLayout

    init(image: SnapshotImage, region: RegionLayout) {
        self.image = image
        self.region = region
    }

    public var name: String { "snapshot memory \(image.memoryPath) (region '\(region.name)')" }

    /// `pread` of a file the image holds open: safe on any thread, so the fault router
    /// installs ring-3 pages itself, without kicking the vCPU (unless its guest uses
    /// async page faults).
    public var mayBeCalledFromAnyThread: Bool { true }

    /// One `pread` for a whole prefetch run (`readPage` takes any page-multiple buffer).
    public func readPages(at gpa: UInt64, into buffer: UnsafeMutableRawBufferPointer, for request: PageRequest) throws(VMMError) {
        try readPage(at: gpa, into: buffer, for: request)
    }

    public func readPage(at gpa: UInt64, into buffer: UnsafeMutableRawBufferPointer, for request: PageRequest) throws(VMMError) {
        guard gpa >= region.guestAddress, gpa - region.guestAddress <= region.size,
              UInt64(buffer.count) <= region.size - (gpa - region.guestAddress) else {
            throw .invalidArgument("guest-physical page \(hex(gpa)) lies outside region '\(region.name)' of \(image.memoryPath)")
        }
        let offset = region.fileOffset + (gpa - region.guestAddress)
        do {
            try image.readExactly(into: buffer.baseAddress!, count: buffer.count, at: offset)
            try image.sums?.check(buffer.baseAddress!, pages: buffer.count / MemorySums.pageSize, at: offset)
        } catch {
            throw .invalidArgument("\(error)")
        }
    }
}
