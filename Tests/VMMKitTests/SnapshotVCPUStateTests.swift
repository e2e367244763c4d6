import CKVM
import Foundation
import Glibc
import Testing
@testable import VMMKit
@testable import VMMSnapshot

/// A vCPU state file changed after it was written (its manifest line made to match, as
/// a hand-made or foreign snapshot's would be): what a restore refuses, and what the
/// kernel is told.
@Suite("Snapshot vCPU state against the VM it belongs to", .serialized, .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct SnapshotVCPUStateTests {
    /// A copy of `base` whose vcpu0.state went through `change`, with its manifest line
    /// (size, checksum) to match.
    static func changed(_ base: String, _ name: String, in scratch: ScratchDir, _ change: (inout VCPUState) -> Void) throws -> String {
        let dir = try SnapshotTests.copy(base, to: name, in: scratch)
        let file = dir + "/vcpu0.state"
        var state = try VCPUState.decode(Array(try Data(contentsOf: URL(fileURLWithPath: file))), id: 0, path: file)
        change(&state)
        let bytes = state.encoded()
        try Data(bytes).write(to: URL(fileURLWithPath: file))
        var manifest = try SnapshotManifest.parse(Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/manifest"))), path: "m")
        manifest.stateFiles[1] = .init(name: "vcpu0.state", size: UInt64(bytes.count), checksum: bytes.withUnsafeBytes(fnv1a64))
        try manifest.text().write(toFile: dir + "/manifest", atomically: false, encoding: .utf8)
        return dir
    }

    static func saved(_ dir: String) throws -> VCPUState {
        try VCPUState.decode(Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/vcpu0.state"))), id: 0, path: "t")
    }

    /// `SnapshotTests`' check: status 1, one line holding `message`, the directory unchanged.
    func expectRefused(_ dir: String, _ message: String) throws { try SnapshotTests().expectRefused(dir, message) }

    @Test("state the writer always writes for its VM is required: a LAPIC exactly with an irqchip, XSAVE, XCRs and debug registers as the manifest lists them, at least one XCR, each MSR once (before, each restored as the fresh vCPU's power-on values)")
    func missingState() throws {
        let scratch = ScratchDir("vcpu-missing")
        let base = try SnapshotTests.baseSnapshot(scratch)
        let chipDir = scratch.sub("chip")
        let g = try SnapshotGuest(vcpus: 1, irqchip: true, released: false)
        try g.snapshotAtGate(to: chipDir)
        g.guest.vm.close()
        let withChip = try Self.saved(chipDir)
        let plain = try Self.saved(base)
        #expect(withChip.lapic != nil && plain.lapic == nil)
        #expect(plain.xsave != nil && plain.xcrs != nil && plain.debugRegisters != nil, "this host saves all three")

        try expectRefused(try Self.changed(chipDir, "no-lapic", in: scratch) { $0.lapic = nil },
                          "vcpu0.state: no lapic record, though the VM has an in-kernel irqchip")
        try expectRefused(try Self.changed(base, "extra-lapic", in: scratch) { $0.lapic = withChip.lapic },
                          "vcpu0.state: a lapic record, though the VM has no in-kernel irqchip")
        try expectRefused(try Self.changed(base, "no-xsave", in: scratch) { $0.xsave = nil; $0.fpu = kvm_fpu() },
                          "vcpu0.state: no xsave record, though the manifest lists KVM_CAP_XSAVE")
        try expectRefused(try Self.changed(base, "no-xcrs", in: scratch) { $0.xcrs = nil },
                          "vcpu0.state: no xcrs record, though the manifest lists KVM_CAP_XCRS")
        try expectRefused(try Self.changed(base, "xcrs-0", in: scratch) { $0.xcrs?.nr_xcrs = 0 },
                          "vcpu0.state: an xcrs record holding no XCR (XCR0 is always saved)")
        try expectRefused(try Self.changed(base, "no-debugregs", in: scratch) { $0.debugRegisters = nil },
                          "vcpu0.state: no debugRegs record, though the manifest lists KVM_CAP_DEBUGREGS")
        let first = try #require(plain.msrs.first)
        try expectRefused(try Self.changed(base, "msr-twice", in: scratch) { $0.msrs.append(first) },
                          "vcpu0.state: MSR 0x\(String(first.index, radix: 16)) appears twice")
        // The same file unchanged, through the same rewrite, restores.
        let same = try RunnerResult.restore(try Self.changed(base, "unchanged", in: scratch) { _ in })
        #expect(same.status == 0, "\(same.stderr)")
    }

    @Test("the guest's TSC keeps its saved rate: a higher one is given (KVM catches up), one within KVM's 250 ppm is taken, a lower one is refused naming both rates where the host cannot scale (it was ignored, and the guest's clocks ran slow)")
    func tscRate() throws {
        let scratch = ScratchDir("vcpu-tsc")
        let base = try SnapshotTests.baseSnapshot(scratch)
        let host = try #require(try Self.saved(base).tscKHz, "this host reports its TSC rate")
        let slower = host - host / 10
        let slowerDir = try Self.changed(base, "slower", in: scratch) { $0.tscKHz = slower }
        if try KVM.open().hasExtension(KVM_CAP_TSC_CONTROL) {
            let r = try RunnerResult.restore(slowerDir)
            #expect(r.status == 0, "a host with TSC scaling runs it: \(r.stderr)")
        } else {
            try expectRefused(slowerDir, "vCPU 0: its TSC ran at \(slower) kHz; this host's runs at \(host) kHz and KVM cannot run it at the saved rate (KVM_SET_TSC_KHZ: ")
        }
        for (name, rate) in [("near", host - host / 10_000), ("faster", host + host / 10)] {
            let r = try RunnerResult.restore(try Self.changed(base, name, in: scratch) { $0.tscKHz = rate })
            #expect(r.status == 0, "\(name): \(r.stderr)")
        }
    }
}
