// Restores a snapshot of the snapshot tests' guest (payload snap_work) in a process of
// its own and runs it to the end, printing what the guest reported:
//   SnapshotRunner restore DIR [--eager] [--prefetch | --prefetch-first] [--record-working-set]
// --prefetch fetches the snapshot's working set on a thread alongside the vCPUs;
// --prefetch-first lets that thread finish before the vCPUs start (deterministic counts);
// --record-working-set stores the pages this run touched as the working set.
// stdout: "vcpu N HASH" per report (per vCPU in order), "stop N REASON" per vCPU,
// "fetched PAGES"; an error: one line on stderr, status 1.
import Glibc
import VMMKit
import VMMSnapshot

func fail(_ message: String) -> Never {
    let line = Array("SnapshotRunner: \(message)\n".utf8)
    _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    exit(1)
}

/// Not in top-level code: that is main-actor isolated, and the handlers run on vCPU threads.
func restoreAndRun(_ dir: String, eager: Bool, prefetch: Bool, prefetchFirst: Bool, record: Bool) throws {
    let kvm = try KVM.open()
    let image = try SnapshotImage(path: dir)
    let restored = try image.restore(on: kvm, memory: eager ? .eager : .lazy)
    let dispatcher = ExitDispatcher()
    let reports = Lock<[UInt32: [UInt32]]>([:])
    // The reports come in on 0x30 + vCPU id; the gate (0x23) is open; 0xf4 ends a vCPU.
    try dispatcher.registerPIO(port: 0x30, count: 8, owner: "reports") { io, vcpu in
        let value = io.element()
        reports.withLock { $0[vcpu.id, default: []].append(value) }
        return .handled
    }
    try dispatcher.registerPIO(port: 0x23, owner: "gate") { io, _ in
        io.setElement(0, 1)
        return .handled
    }
    try dispatcher.registerPIO(port: 0xf4, owner: "exit") { io, _ in .stop(.guestExit(code: Int32(bitPattern: io.element()))) }
    try restored.attach(to: dispatcher)
    if prefetchFirst { print("prefetched \(try restored.startPrefetch(image.workingSet).join().get())") }
    let prefetcher = prefetch ? try restored.startPrefetch(image.workingSet) : nil
    let reasons = try restored.vm.run(dispatcher)
    if let prefetcher { print("prefetched \(try prefetcher.join().get())") }
    if record { try image.recordWorkingSet(restored.touchedPages) }
    let all = reports.withLock { $0 }
    for id in all.keys.sorted() {
        for value in all[id]! { print("vcpu \(id) \(String(value, radix: 16))") }
    }
    for (vcpu, reason) in zip(restored.vm.vcpus, reasons) { print("stop \(vcpu.id) \(reason)") }
    print("fetched \(restored.pagesFetched)")
    restored.close()
}

let args = CommandLine.arguments
guard args.count >= 3, args[1] == "restore" else { fail("usage: SnapshotRunner restore DIR [--eager]") }
do {
    let flags = args.dropFirst(3)
    try restoreAndRun(args[2], eager: flags.contains("--eager"), prefetch: flags.contains("--prefetch"),
                      prefetchFirst: flags.contains("--prefetch-first"), record: flags.contains("--record-working-set"))
} catch {
    fail("\(error)")
}
