import CKVM
import Glibc
import Synchronization
import Testing
@testable import VMMKit

/// The VM's own calls after `close()`: each throws `.closed`, and none reaches a file the
/// process opened after the close (which, before, could take the VM fd's number).
@Suite("VM API misuse on real KVM", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct VMMisuseTests {
    /// A scratch file holding `bytes`, unlinked: its fd and the bytes to compare with later.
    static func scratchFile(_ bytes: [UInt8]) -> Int32 {
        var path = Array("/tmp/vmm-closed-vm-XXXXXX".utf8CString)
        let fd = path.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        path.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        _ = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        return fd
    }

    static func contents(_ fd: Int32) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        return Array(buffer.prefix(max(n, 0)))
    }

    @Test("every VM call after close() throws .closed; the fd number stays on /dev/null and a file opened after is untouched")
    func callsAfterClose() throws {
        let kvm = try KVM.open()
        let vm = try kvm.createVM()
        try vm.createIRQChip()
        let coalesced = kvm.checkExtension(KVM_CAP_COALESCED_MMIO) > 0
        if coalesced { try vm.registerCoalescedMMIO(address: 0xd000_0000, length: 0x1000) }
        let msrFilter = kvm.hasExtension(KVM_CAP_X86_MSR_FILTER)
        if msrFilter { try vm.denyMSRs([0x4b56_4d02]) }
        let number = vm.fd
        vm.close()

        let original = Array("a file opened after the VM closed".utf8)
        let other = Self.scratchFile(original)
        defer { Glibc.close(other) }
        #expect(other != number, "the closed VM's fd number was free for the next file")
        var reserved = stat(), null = stat()
        #expect(fstat(number, &reserved) == 0)
        #expect(stat("/dev/null", &null) == 0)
        #expect(reserved.st_rdev == null.st_rdev && (reserved.st_mode & S_IFMT) == S_IFCHR)

        let closed = VMMError.closed("virtual machine")
        #expect(throws: closed) { try vm.createVCPU() }
        #expect(throws: closed) { try vm.enableCapability(UInt32(KVM_CAP_EXCEPTION_PAYLOAD), args: [1]) }
        #expect(throws: closed) { try vm.createIRQChip() }
        #expect(throws: closed) { try vm.setIRQLine(4, level: true) }
        #expect(throws: closed) { try vm.signalMSI(apicID: 0, vector: 0x40) }
        #expect(throws: closed) { try vm.createPIT() }
        #expect(throws: closed) { try vm.setPITSilenced(true) }
        #expect(throws: closed) { try vm.restartPeriodicPIT() }
        #expect(throws: closed) { try vm.applySeaBIOSInterruptState() }
        #expect(throws: closed) { _ = try vm.addIOEventFD(space: .pio, address: 0x500, length: 1) }
        #expect(throws: closed) { _ = try vm.addIRQFD(gsi: 5) }
        if coalesced {
            #expect(throws: closed) { try vm.unregisterCoalesced(space: .mmio, address: 0xd000_0000, length: 0x1000) }
            #expect(throws: closed) { try vm.registerCoalescedMMIO(address: 0xe000_0000, length: 0x1000) }
        }
        if msrFilter {
            // The same set again made no ioctl and returned as if the filter were there.
            #expect(throws: closed) { try vm.denyMSRs([0x4b56_4d02]) }
            #expect(throws: closed) { try vm.denyMSRs([0x4b56_4d03]) }
        }
        #expect(throws: closed) { try vm.memory.addRegion(name: "ram", guestAddress: 0, size: 0x1000) }
        #expect(throws: closed) { _ = try vm.run(ExitDispatcher()) }

        #expect(Self.contents(other) == original)
        var status = stat()
        #expect(fstat(other, &status) == 0 && status.st_size == original.count)
        #expect(lseek(other, 0, SEEK_CUR) == off_t(original.count))
    }

    /// What the calling thread reports: calls made, and the error that ended them.
    final class Caller: Sendable {
        let calls = Atomic<Int>(0)
        let failure = Mutex<VMMError?>(nil)
    }

    @Test("a thread driving an IRQ line while another closes the VM gets .closed, whatever the timing")
    func closeWhileCalling() throws {
        for _ in 0..<20 {
            let vm = try KVM.open().createVM()
            try vm.createIRQChip()
            let caller = Caller()
            let thread = spawn {
                while true {
                    do throws(VMMError) {
                        try vm.setIRQLine(4, level: caller.calls.load(ordering: .relaxed) & 1 == 0)
                    } catch {
                        caller.failure.withLock { $0 = error }
                        return
                    }
                    caller.calls.add(1, ordering: .relaxed)
                }
            }
            #expect(eventually { caller.calls.load(ordering: .relaxed) > 100 })
            vm.close()
            pthread_join(thread, nil)
            #expect(caller.failure.withLock { $0 } == .closed("virtual machine"))
        }
    }
}
