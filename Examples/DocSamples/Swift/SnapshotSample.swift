// The code samples of the documentation, compiled (Examples/DocSamples/README.md).
import VMMKit
import VMMSnapshot

func readmeSnapshot(vm: VirtualMachine, dispatcher: ExitDispatcher) throws {
    // doc-sample: README.md #5
    for vcpu in vm.vcpus { vcpu.pause() }
    try VMSnapshot.save(vm, dispatcher: dispatcher, to: "/var/snap/vm1")   // VM stays paused
    // ... later, in another process:
    let image = try SnapshotImage(path: "/var/snap/vm1")       // every file checked
    let restored = try image.restore(on: try KVM.open(), memory: .lazy)   // or .eager
    // register the same handlers on `dispatcher`, then:
    try restored.attach(to: dispatcher)                         // the demand pagers
    let prefetch = try restored.startPrefetch(image.workingSet) // optional, alongside the vCPUs
    let reasons = try restored.vm.run(dispatcher)
    try image.recordWorkingSet(restored.touchedPages)           // for the next restore
    // doc-sample: end
    _ = (prefetch, reasons)
}
