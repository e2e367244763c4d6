import Glibc
import Synchronization
import Testing
import VMMControl
@testable import VMMKit

/// Waits for `condition`, polling up to `tries` times with a short pause between polls.
/// The default bound (about a minute) only matters when the condition never comes: a
/// test waits as long as a loaded 2-core machine needs, and a broken one still ends.
func eventually(tries: Int = 30_000, _ condition: () throws -> Bool) rethrows -> Bool {
    for _ in 0..<tries {
        if try condition() { return true }
        usleep(2000)
    }
    return false
}

/// The guest of the control tests: `out %al, $0x3ff` (the UART's scratch register in
/// `vmm run`) in an endless loop, so its progress is its exit count.
let outLoop: [UInt8] = [0x66, 0xba, 0xff, 0x03, 0xee, 0xeb, 0xfd]

/// Counts the guest's `out`s from the handler (an escaping closure cannot hold an Atomic).
final class OutCounter: Sendable {
    private let n = Atomic<Int>(0)
    func add(_ k: Int, ordering: AtomicUpdateOrdering) { n.add(k, ordering: .relaxed) }
    func load(ordering: AtomicLoadOrdering) -> Int { n.load(ordering: .relaxed) }
}

/// A one-vCPU guest running `outLoop`, its `out`s counted by a handler.
func outLoopGuest() throws -> (TestGuest, OutCounter) {
    let guest = try TestGuest("spin")
    try guest.vm.memory.writeBytes(GuestLayout.codeStart, outLoop)
    let outs = OutCounter()
    try guest.dispatcher.registerPIO(port: 0x3ff, owner: "test") { _, _ in outs.add(1, ordering: .relaxed); return .handled }
    return (guest, outs)
}

@Suite("VMController on real KVM", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct VMControllerTests {
    @Test("pause parks every vCPU and the guest makes no progress; resume continues; stop ends the run")
    func pauseResumeStop() throws {
        let (guest, outs) = try outLoopGuest()
        let counter = ExitKindCounter(vcpus: 1)
        try guest.dispatcher.setObserver(counter)
        let controller = VMController(vm: guest.vm, exitCounter: counter)
        try guest.vcpu.start(guest.dispatcher)

        #expect(eventually { outs.load(ordering: .relaxed) > 50 })
        try controller.pause()
        #expect(controller.info().state == .paused)
        #expect(controller.info().vcpus.map(\.state) == [.paused])
        let paused = outs.load(ordering: .relaxed)
        let exitsPaused = controller.metrics().exitsPerVCPU
        for _ in 0..<50 { _ = controller.metrics(); usleep(1000) } // a window in which a running guest makes ~1000 exits
        #expect(outs.load(ordering: .relaxed) == paused)
        #expect(controller.metrics().exitsPerVCPU == exitsPaused)

        // Pausing a paused VM does nothing: one resume still runs it (a second pause held
        // the vCPUs for good).
        try controller.pause()
        try controller.resume()
        #expect(eventually { controller.info().state == .running }) // each vCPU reports running once it wakes
        #expect(eventually { outs.load(ordering: .relaxed) > paused + 50 })

        let m = controller.metrics()
        let io = m.exitsByKind?.first { $0.kind == "io" }?.count ?? 0
        #expect(io >= UInt64(paused + 50))

        controller.stop()
        #expect(guest.vcpu.join() == .requested)
        #expect(controller.info().state == .stopped)
        #expect(throws: ControlError.conflict("the VM has stopped")) { try controller.pause() }
        #expect(controller.info().memory.map(\.name) == ["ram"])
        #expect(controller.info().memory.first?.size == 2 << 20)
    }

    @Test("snapshot: 501 without a hook; the hook gets the paused VM and the directory; a running VM is refused")
    func snapshotHook() throws {
        let guest = try TestGuest("spin")
        let controller = VMController(vm: guest.vm)
        try guest.vcpu.start(guest.dispatcher)
        #expect(throws: ControlError.unavailable("snapshotting is not available in this build (no snapshot hook installed)")) {
            try controller.snapshot(to: "/tmp/x")
        }
        let seen = Recorder<String>()
        controller.setSnapshotHook { vm, dir in seen.append("\(vm.vcpus[0].isPaused) \(dir)") }
        #expect(throws: ControlError.conflict(#"the VM must be paused before a snapshot (PATCH /vm {"state": "Paused"})"#)) {
            try controller.snapshot(to: "/tmp/x")
        }
        try controller.pause()
        try controller.snapshot(to: "/tmp/snap")
        #expect(seen.all == ["true /tmp/snap"])
        #expect(controller.info().state == .paused)
        controller.stop()
        #expect(guest.vcpu.join() == .requested)
    }

    @Test("stop while a pause waits for a vCPU held in a slow handler returns at once and ends that wait")
    func stopDuringPendingPause() throws {
        let guest = try TestGuest("spin")
        try guest.vm.memory.writeBytes(GuestLayout.codeStart, outLoop)
        let inHandler = Flag(), release = Flag()
        try guest.dispatcher.registerPIO(port: 0x3ff, owner: "test") { _, _ in
            inHandler.set()
            while !release.isSet { usleep(1000) }
            return .handled
        }
        let controller = VMController(vm: guest.vm)
        try guest.vcpu.start(guest.dispatcher)
        #expect(eventually { inHandler.isSet })
        // The pause cannot park the vCPU until its handler returns.
        let paused = Flag(), stopped = Flag()
        let pauser = spawn { _ = try? controller.pause(); paused.set() }
        #expect(eventually { guest.vcpu.control.pending.load(ordering: .sequentiallyConsistent) }) // the pause is requested
        let stopper = spawn { controller.stop(); stopped.set() }
        // Both return while the handler still holds the vCPU: the stop ended the pause's wait.
        #expect(eventually { stopped.isSet && paused.isSet }, "stop waited behind the pending pause")
        release.set()
        #expect(guest.vcpu.join() == .requested)
        pthread_join(pauser, nil)
        pthread_join(stopper, nil)
        #expect(controller.info().state == .stopped)
    }

    @Test("while a snapshot's hook writes: metrics and info are answered, resume and a second snapshot are refused, the VM stays paused; after it, resume works")
    func snapshotOutsideTheLock() throws {
        let guest = try TestGuest("spin")
        let controller = VMController(vm: guest.vm)
        try guest.vcpu.start(guest.dispatcher)
        let writing = Flag(), release = Flag(), done = Flag()
        controller.setSnapshotHook { _, _ in
            writing.set()
            while !release.isSet { usleep(1000) }
        }
        try controller.pause()
        let snapshotter = spawn { _ = try? controller.snapshot(to: "/tmp/x"); done.set() }
        #expect(eventually { writing.isSet })
        // Each of these waited for the whole snapshot when the hook ran under the lock.
        _ = controller.metrics()
        #expect(controller.info().state == .paused)
        #expect(throws: ControlError.conflict("a snapshot is being written; resume once it is done")) { try controller.resume() }
        #expect(throws: ControlError.conflict("a snapshot is being written; ask again once it is done")) { try controller.snapshot(to: "/tmp/y") }
        #expect(!done.isSet && guest.vcpu.isPaused)
        release.set()
        pthread_join(snapshotter, nil)
        try controller.resume()
        #expect(eventually { controller.info().state == .running })
        controller.stop()
        #expect(guest.vcpu.join() == .requested)
    }

    @Test("request bodies: strict flat JSON, unknown or missing fields and bad values are 400 with a message")
    func bodies() throws {
        #expect(try FlatJSON.parseObject(Array(#" { "state" : "Paused" } "#.utf8)) == ["state": "Paused"])
        #expect(try FlatJSON.parseObject(Array(#"{"a":"\u00e9\n\"\ud83d\ude00"}"#.utf8)) == ["a": "é\n\"😀"])
        let bad: [(String, String)] = [
            (#"{"state": "Paused""#, "malformed JSON body at byte 18: unterminated object"),
            (#"{"state": 1}"#, "field 'state' must be a string"),
            (#"{"state": "a", "state": "b"}"#, "field 'state' given twice"),
            (#"{"state": "a"} x"#, "malformed JSON body at byte 15: bytes after the object"),
            (#"{"s": "\ud800"}"#, "malformed JSON body at byte 13: lone surrogate"),
            ("{\"s\": \"\u{1}\"}", "malformed JSON body at byte 8: control character in a string"),
            ("[]", "malformed JSON body at byte 0: expected '{'"),
        ]
        for (body, message) in bad {
            #expect(throws: ControlError.badRequest(message)) { try FlatJSON.parseObject(Array(body.utf8)) }
        }
        #expect(throws: ControlError.badRequest("malformed JSON body: invalid UTF-8 in a string")) {
            try FlatJSON.parseObject([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x22, 0x22, 0x7d])
        }
        #expect(FlatJSON.quote("a\"b\\\u{1}") == #""a\"b\\\u0001""#)

        let guest = try TestGuest("spin")
        let api = ControlAPI(VMController(vm: guest.vm))
        #expect(api.setState(Array(#"{"state": "Sleeping"}"#.utf8))
            == .init(status: 400, body: #"{"fault_message": "field 'state' must be \"Paused\" or \"Resumed\", not \"Sleeping\""}"#))
        #expect(api.setState(Array(#"{"state": "Paused", "x": "y"}"#.utf8)).body == #"{"fault_message": "unknown field 'x'"}"#)
        #expect(api.action(Array("{}".utf8)).body == #"{"fault_message": "missing field 'action_type'"}"#)
        #expect(api.action([]).status == 400)
        #expect(api.snapshot(Array(#"{"snapshot_dir": ""}"#.utf8)).status == 400)
        #expect(api.snapshot(Array(#"{"snapshot_dir": "/tmp/s"}"#.utf8)).status == 501)
        #expect(api.screendump(Array(#"{"filename": ""}"#.utf8)).status == 400)
        for (body, fault) in [(#"{}"#, "no field: give 'dx', 'dy', 'wheel' or 'buttons'"),
                              (#"{"dx": "1024"}"#, #"field 'dx' must be a whole number from -1023 to 1023, not \"1024\""#),
                              (#"{"dy": "+5"}"#, #"field 'dy' must be a whole number from -1023 to 1023, not \"+5\""#),
                              (#"{"wheel": "-"}"#, #"field 'wheel' must be a whole number from -1023 to 1023, not \"-\""#),
                              (#"{"buttons": "left thumb"}"#, #"unknown button \"thumb\" (left, right, middle, side, extra)"#),
                              (#"{"dx": "1", "x": "1"}"#, "unknown field 'x'")] {
            #expect(api.mouse(Array(body.utf8)) == .init(status: 400, body: #"{"fault_message": ""# + fault + "\"}"), "\(body)")
        }
        #expect(api.mouse(Array(#"{"dx": "-1023", "buttons": ""}"#.utf8))
            == .init(status: 501, body: #"{"fault_message": "this machine has no mouse"}"#))
        #expect(api.screendump(Array(#"{"filename": "/tmp/s.ppm", "x": "y"}"#.utf8)).body == #"{"fault_message": "unknown field 'x'"}"#)
        #expect(api.screendump(Array(#"{"filename": "/tmp/s.ppm"}"#.utf8))
            == .init(status: 501, body: #"{"fault_message": "this machine has no graphics display (vmm run --vga std)"}"#))
        // Nothing runs yet: the VM counts as stopped.
        #expect(api.setState(Array(#"{"state": "Paused"}"#.utf8)) == .init(status: 409, body: #"{"fault_message": "the VM has stopped"}"#))
    }
}
