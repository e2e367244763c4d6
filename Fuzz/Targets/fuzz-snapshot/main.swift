import FuzzDriver
@testable import VMMKit
@testable import VMMSnapshot

// The snapshot reader's parsers, which a restore runs on files anyone could have
// written: the first byte picks the manifest, a vCPU's state file, vm.state or a working
// set; the rest is the file. Any input gives a value or one error; a value writes back
// to what reads as the same value, and a working set's pages lie in its regions.

/// The working set's regions (unsorted, as a manifest may list them): one of them ends
/// at 2^64. Before `runFuzzer`, which never returns: a global of main.swift declared
/// after it would never be initialised.
let regions = [
    RegionLayout(name: "high", guestAddress: 0x1_0000_0000, size: 0x10000, backing: .anonymous, readOnly: false, fileOffset: 0x200000),
    RegionLayout(name: "low", guestAddress: 0, size: 0xa0000, backing: .anonymous, readOnly: false, fileOffset: 0),
    RegionLayout(name: "top", guestAddress: 0xffff_ffff_ffff_0000, size: 0x10000, backing: .anonymous, readOnly: false, fileOffset: 0x100000),
    RegionLayout(name: "mid", guestAddress: 0x10_0000, size: 0x10_0000, backing: .anonymous, readOnly: false, fileOffset: 0x300000),
]

runFuzzer { data, size in
    let input = fuzzInput(data, size)
    guard let kind = input.first else { return 0 }
    let bytes = Array(input.dropFirst())
    switch kind % 4 {
    case 0:
        let manifest: SnapshotManifest
        do throws(SnapshotError) { manifest = try SnapshotManifest.parse(bytes, path: "fuzz") } catch { requireOneLine(error.description); return 0 }
        precondition((try? SnapshotManifest.parse(Array(manifest.text().utf8), path: "fuzz")) == manifest)
    case 1:
        guard let state = try? VCPUState.decode(bytes, id: 0, path: "fuzz") else { return 0 }
        let encoded = state.encoded()
        precondition((try? VCPUState.decode(encoded, id: 0, path: "fuzz"))?.encoded() == encoded)
    case 3:
        guard let pages = try? SnapshotImage.workingSet(bytes, regions: regions, path: "fuzz") else { return 0 }
        for gpa in pages {
            precondition(gpa % 4096 == 0 && regions.contains { gpa >= $0.guestAddress && gpa - $0.guestAddress < $0.size })
        }
    default:
        var state = VMState(irqchip: nil, pit: nil, clock: nil, regions: [], vcpus: [])
        guard (try? state.decodeDevices(bytes, path: "fuzz")) != nil else { return 0 }
        var again = VMState(irqchip: nil, pit: nil, clock: nil, regions: [], vcpus: [])
        let encoded = state.encodedDevices()
        precondition((try? again.decodeDevices(encoded, path: "fuzz")) != nil && again.encodedDevices() == encoded)
    }
    return 0
}
