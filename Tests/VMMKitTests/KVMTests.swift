import CKVM
import Glibc
import Testing
@testable import VMMKit

@Suite("Opening KVM")
struct KVMOpenTests {
    @Test("a missing device names the path, the errno and what to do")
    func missingDevice() {
        #expect {
            _ = try KVM.open(path: "/nonexistent/kvm")
        } throws: { error in
            let text = (error as? VMMError)?.description ?? ""
            return text.hasPrefix("cannot open /nonexistent/kvm: No such file or directory (errno 2)")
                && text.contains("modprobe kvm")
        }
    }

    @Test("a file that is not the KVM device is refused with the failing request named")
    func notKVM() {
        let fds = openFDs()
        #expect {
            _ = try KVM.open(path: "/dev/null")
        } throws: { ($0 as? VMMError)?.description == "KVM_GET_API_VERSION failed: Inappropriate ioctl for device (errno 25)" }
        #expect(fdsOpened(since: fds) == [])
    }
}

@Suite("KVM device on real KVM", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct KVMDeviceTests {
    @Test("API version 12, vCPU mmap size, capabilities and supported CPUID")
    func capabilities() throws {
        let kvm = try KVM.open()
        #expect(kvm.vcpuMmapSize >= 4096)
        #expect(kvm.hasExtension(KVM_CAP_USER_MEMORY))
        #expect(kvm.checkExtension(KVM_CAP_NR_VCPUS) >= 1)
        #expect(!kvm.hasExtension(0x7fff_0000))
        let cpuid = try kvm.supportedCPUID()
        #expect(cpuid.contains { $0.function == 0 })
        #expect(kvm.physicalAddressBits >= 36)
    }

    @Test("vCPU state round-trips: regs, sregs, fpu, msrs, events, mp_state")
    func stateRoundTrip() throws {
        let guest = try TestGuest("hlt")
        let vcpu = guest.vcpu
        var regs = try vcpu.registers()
        regs.rbx = 0x1122_3344_5566_7788
        regs.r15 = 42
        try vcpu.setRegisters(regs)
        #expect(try vcpu.registers().rbx == 0x1122_3344_5566_7788)
        #expect(try vcpu.registers().r15 == 42)
        let sregs = try vcpu.specialRegisters()
        #expect(sregs.cr3 == GuestLayout.pml4 && sregs.efer & 0x500 == 0x500)
        var fpu = try vcpu.fpu()
        fpu.fcw = 0x27f
        fpu.xmm.0.0 = 0xa5
        try vcpu.setFPU(fpu)
        // (mxcsr reads back 0 through KVM_GET_FPU on kvm_pvm, so it is not compared.)
        let back = try vcpu.fpu()
        #expect(back.fcw == 0x27f && back.xmm.0.0 == 0xa5)
        try vcpu.setMSRs([(index: 0xc000_0102, value: 0xabcd_0000)]) // KERNEL_GS_BASE
        #expect(try vcpu.msrs([0xc000_0102]) == [0xabcd_0000])
        let events = try vcpu.events()
        try vcpu.setEvents(events)
        #expect(try vcpu.mpState() == 0)
        #expect(try vcpu.translate(0x12345) == 0x12345)
        #expect(try vcpu.translate(0x1_0000_0000) == nil)
    }
}
