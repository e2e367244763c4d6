import Glibc
import VMMKit
import VMMPaging

/// Working-set prefetch (REAP, FaaSnap): a restore records the pages the guest touched
/// first into the snapshot; the next lazy restore fetches them in bulk on a thread of
/// its own while the vCPUs start, instead of one fault at a time.
extension SnapshotImage {
    /// A working set's most pages: its file stays within a state file's limit.
    public static let maxWorkingSetPages = (SnapshotManifest.maxStateFileSize - 4) / 8

    /// Records `pages` (guest-physical, page aligned, inside a region) as this
    /// snapshot's working set; past `maxWorkingSetPages` only the first are kept (a
    /// prefetch hint, which a larger file would have made the snapshot unreadable). The
    /// new set is written under a name of its own, then the manifest is replaced
    /// atomically (rename), then the old set removed: a crash leaves either the old or
    /// the new snapshot, both whole.
    public func recordWorkingSet(_ pages: [UInt64]) throws(SnapshotError) {
        let spans = RegionSpans(manifest.regions)
        for gpa in pages where !spans.holdsPage(gpa) {
            throw .refused("working-set page \(hex(gpa)) is not a page of a region of \(path)")
        }
        let pages = pages.prefix(Self.maxWorkingSetPages)
        var w = ByteWriter()
        w.append(UInt32(pages.count))
        for gpa in pages { w.append(gpa) }
        let sum = w.bytes.withUnsafeBytes(fnv1a64)
        let name = "working-set-\(String(sum, radix: 16))"
        var updated = manifest
        updated.workingSet = .init(name: name, size: UInt64(w.bytes.count), checksum: sum)
        // Checked before anything is written.
        let text = try updated.textReadingBack("a working set of \(pages.count) pages", path: path + "/manifest")
        if manifest.workingSet?.name != name {
            unlink(path + "/" + name)
            try SnapshotFiles.create(path + "/" + name, w.bytes)
        }
        let temporary = path + "/manifest.partial-\(getpid())"
        unlink(temporary)
        try SnapshotFiles.create(temporary, text)
        guard rename(temporary, path + "/manifest") == 0 else {
            let error = SnapshotFiles.systemError("rename to", path + "/manifest")
            unlink(temporary)
            throw error
        }
        if let old = manifest.workingSet, old.name != name { unlink(path + "/" + old.name) }
    }
}

extension RestoredVM {
    /// The pages the guest has touched since the restore (lazy restores).
    public var touchedPages: [UInt64] { pagers.flatMap(\.presentPageAddresses) }
}

/// A thread that prefetches a working set through the pagers; `join` returns how many
/// pages it installed, or the first error (a page source that failed).
public final class WorkingSetPrefetch: @unchecked Sendable {
    private var thread = pthread_t()
    private var result: Result<Int, VMMError> = .success(0)
    private let pagers: [DemandPager]
    private let pages: [UInt64]
    private var joined = false

    init(pagers: [DemandPager], pages: [UInt64]) throws(SnapshotError) {
        self.pagers = pagers
        self.pages = pages
        do { thread = try HostThread.start("prefetch") { self.run() } } catch {
            joined = true
            throw .system(error)
        }
    }

    private func run() {
        var installed = 0
        do {
            for pager in pagers {
                installed += try pager.prefetch(pages.filter { pager.region.contains($0) })
            }
            result = .success(installed)
        } catch {
            result = .failure(error)
        }
    }

    /// Waits for the prefetch to end.
    public func join() -> Result<Int, VMMError> {
        if !joined {
            pthread_join(thread, nil)
            joined = true
        }
        return result
    }
}

extension RestoredVM {
    /// Starts prefetching `pages` (usually `SnapshotImage.workingSet`) alongside the
    /// vCPUs; a no-op thread for an eager restore.
    public func startPrefetch(_ pages: [UInt64]) throws(SnapshotError) -> WorkingSetPrefetch {
        try WorkingSetPrefetch(pagers: pagers, pages: pages)
    }
}
