import CPluginsUnderTest
import CVMMPlugin
import FuzzDriver
import Glibc
@testable import VMMKit

// The C plugins VMMKit ships (DebugExit, MemoryFault, PCIHost, PCTestDev), compiled from
// their sources into this target with coverage and ASan (Fuzz/CPlugins). The input picks
// a plugin and its config string (what a user's `--plugin NAME,CONFIG` gives), then a
// program of exits played by the scripted vCPU under the real run loop to the plugin's
// handlers (port I/O near their ports with any size and count, MMIO near their windows,
// memory faults anywhere), then a state blob (what a snapshot file gives). Every
// restore the plugin takes must save back byte for byte: one that kept something else
// would be silent corruption. MemoryFault's `snapshot=` may only name the file this
// target writes, and `latency-us` only below 100 µs, so that an input cannot wait on a
// FIFO or sleep its way to libFuzzer's timeout.
let names = ["DebugExit", "MemoryFault", "PCIHost", "PCTestDev"]
let snapshotPath = ".build-fuzz/c-plugins.mem"
let snapshotReady: Bool = {
    let fd = open(snapshotPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    let bytes = (0..<(4 * 4096)).map { UInt8(truncatingIfNeeded: $0 &* 7) }
    return write(fd, bytes, bytes.count) == bytes.count
}()
let ports: [UInt16] = [0xf4, 0xcf8, 0xcfc, 0xe0, 0xe4, 0x2000, 0x2010, 0x501]
let windows: [UInt64] = [0xff00_0000, 0xff00_fff8, 0xfee0_0000, 0xd000_0000]
let ramSize: UInt64 = 1 << 20

func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }

/// Whether a config may run here (see the comment above).
func allowed(_ config: String) -> Bool {
    for item in config.split(separator: ",") {
        if item.hasPrefix("snapshot=") && item != "snapshot=\(snapshotPath)" { return false }
        if item.hasPrefix("latency-us=") && item.count > "latency-us=".count + 2 { return false }
    }
    return true
}

/// One exit as the kernel writes it into kvm_run (exit_reason at 8, the union at 32).
func step(_ input: FuzzReader) -> ScriptedVCPU.Step {
    let op = input.u8()
    switch op % 4 {
    case 0: // port I/O: data at offset 4096 of the 3-page buffer
        let port = op & 0x10 != 0 ? input.u16() : ports[Int(op >> 5)] &+ UInt16(input.u8() % 16)
        let s = input.u8()
        let size = s & 0x80 != 0 ? s & 0x7f : [1, 2, 4][Int(s) % 3]
        let count = op & 0x08 != 0 ? UInt32(input.u16() % 1024) : UInt32(input.u8() % 4 + 1)
        let direction: UInt8 = op & 0x04 != 0 ? 1 : 0
        let record = [direction, size] + le(port) + le(count) + le(UInt64(4096))
        let length = min(Int(size) * Int(count), 2 * 4096)
        return .init(writes: [.init(8, le(UInt32(2))), .init(32, record), .init(4096, input.take(min(length, 64)))])
    case 1: // MMIO
        let gpa = op & 0x10 != 0 ? input.u64() : windows[Int(op >> 5) % windows.count] &+ UInt64(input.u16())
        let l = input.u8()
        let len = l & 0x80 != 0 ? UInt32(l & 0x7f) : UInt32(l % 8 + 1)
        let record = le(gpa) + input.take(8) + le(len) + [op & 0x04 != 0 ? 1 : 0]
        return .init(writes: [.init(8, le(UInt32(6))), .init(32, record)])
    case 2: // a memory fault: KVM_RUN -1 with EFAULT or EHWPOISON, annotated or not
        let gpa = op & 0x10 != 0 ? input.u64() : UInt64(input.u32()) % ramSize
        let size = op & 0x20 != 0 ? input.u64() : 4096
        let flags = op & 0x40 != 0 ? input.u64() : 0
        let writes: [ScriptedVCPU.Patch] = op & 0x08 != 0 ? [.init(8, le(UInt32(39))), .init(32, le(flags) + le(gpa) + le(size))] : []
        return .init(rc: -1, errno: op & 0x80 != 0 ? EHWPOISON : EFAULT, writes: writes)
    default: // HLT
        return .init(writes: [.init(8, le(UInt32(5)))])
    }
}

runFuzzer { data, size in
    check(snapshotReady, "cannot write \(snapshotPath)")
    let input = FuzzReader(Array(fuzzInput(data, size)))
    let which = Int(input.u8()) % names.count
    let config = String(decoding: input.take(Int(input.u8()) % 64).filter { $0 != 0 }, as: UTF8.self)
    guard allowed(config) else { return 0 }
    let vm = VirtualMachine.detached()
    try! vm.memory.addRegion(name: "ram", guestAddress: 0, size: ramSize)
    let dispatcher = ExitDispatcher()
    let host = PluginHost(vm: vm, dispatcher: dispatcher)
    defer { host.close() }
    host.logHandler = { _, _, _ in }
    guard (try? host.load(entry: c_plugin_under_test(UInt32(which))!, path: names[which], config: config)) != nil else { return 0 }

    var steps: [ScriptedVCPU.Step] = []
    let program = Int(input.u8()) % 32
    while steps.count < program, !input.done { steps.append(step(input)) }
    let script = ScriptedVCPU(steps: steps)
    script.capturesEntries = false
    _ = VCPU(id: 0, backend: script, memory: vm.memory).runLoop(dispatcher)

    // Whatever the exits did, the state saves and restores as it is.
    let saved: [PluginStateBlob]
    do { saved = try host.saveStateBlobs() } catch { fatalError("\(names[which]): save failed: \(error)") }
    do { try host.restoreStateBlobs(saved) } catch { fatalError("\(names[which]): its own state refused: \(error)") }
    // A blob from the input: refused, or taken exactly.
    guard !input.done else { return 0 }
    let version = input.u8() & 1 == 0 ? saved[0].version : UInt32(input.u8())
    var blob = saved[0]
    blob.version = version
    blob.bytes = input.rest()
    if blob.bytes.count < saved[0].bytes.count, input.bytes.count % 2 == 0 {
        // Mostly the right length: the saved blob with the input laid over its start.
        var patched = saved[0].bytes
        patched.replaceSubrange(0..<blob.bytes.count, with: blob.bytes)
        blob.bytes = patched
    }
    guard (try? host.restoreStateBlobs([blob])) != nil else { return 0 }
    let again: [PluginStateBlob]
    do { again = try host.saveStateBlobs() } catch { fatalError("\(names[which]): save after a restore failed: \(error)") }
    check(again[0].bytes == blob.bytes, "\(names[which]): restored \(blob.bytes.count) bytes, saved back different ones")
    return 0
}
