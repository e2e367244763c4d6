import FuzzDriver
@testable import VMMKit
@testable import VMMSnapshot

// The snapshot reader's parsers, which a restore runs on files anyone could have
// written: the first byte picks the manifest, a vCPU's state file or vm.state; the rest
// is the file. Any input gives a value or one error; a value writes back to what reads
// as the same value.
runFuzzer { data, size in
    let input = fuzzInput(data, size)
    guard let kind = input.first else { return 0 }
    let bytes = Array(input.dropFirst())
    switch kind % 3 {
    case 0:
        guard let manifest = try? SnapshotManifest.parse(bytes, path: "fuzz") else { return 0 }
        precondition((try? SnapshotManifest.parse(Array(manifest.text().utf8), path: "fuzz")) == manifest)
    case 1:
        guard let state = try? VCPUState.decode(bytes, id: 0, path: "fuzz") else { return 0 }
        let encoded = state.encoded()
        precondition((try? VCPUState.decode(encoded, id: 0, path: "fuzz"))?.encoded() == encoded)
    default:
        var state = VMState(irqchip: nil, pit: nil, clock: nil, regions: [], vcpus: [])
        guard (try? state.decodeDevices(bytes, path: "fuzz")) != nil else { return 0 }
        var again = VMState(irqchip: nil, pit: nil, clock: nil, regions: [], vcpus: [])
        let encoded = state.encodedDevices()
        precondition((try? again.decodeDevices(encoded, path: "fuzz")) != nil && again.encodedDevices() == encoded)
    }
    return 0
}
