/// Linux's paravirtual async page fault ABI (arch/x86/include/uapi/asm/kvm_para.h),
/// kept exact so an unmodified Linux guest driver talks to this implementation.
public enum AsyncPFABI {
    /// CPUID leaf with the KVM paravirtual feature bits in EAX.
    public static let featuresLeaf: UInt32 = 0x4000_0001
    /// KVM_FEATURE_ASYNC_PF.
    public static let featureAsyncPF: UInt32 = 1 << 4
    /// KVM_FEATURE_ASYNC_PF_VMEXIT: delivery as a #PF vmexit (nested only); never offered here.
    public static let featureAsyncPFVMExit: UInt32 = 1 << 10
    /// KVM_FEATURE_ASYNC_PF_INT: "page ready" as an interrupt.
    public static let featureAsyncPFInt: UInt32 = 1 << 14

    /// MSR_KVM_ASYNC_PF_EN: bits 63:6 the GPA of the 64-byte area, then the flags below.
    public static let msrEnable: UInt32 = 0x4b56_4d02
    /// MSR_KVM_ASYNC_PF_INT: the "page ready" vector (bits 7:0; the rest reserved).
    public static let msrInterrupt: UInt32 = 0x4b56_4d06
    /// MSR_KVM_ASYNC_PF_ACK: bit 0, written after the guest has consumed a "ready" token.
    public static let msrAck: UInt32 = 0x4b56_4d07
    public static let msrs: [UInt32] = [msrEnable, msrInterrupt, msrAck]

    public static let enabled: UInt64 = 1 << 0
    public static let sendAlways: UInt64 = 1 << 1
    public static let deliveryAsPFVMExit: UInt64 = 1 << 2
    public static let deliveryAsInterrupt: UInt64 = 1 << 3
    public static let reservedEnableBits: UInt64 = 0x30
    public static let areaAddressMask: UInt64 = ~0x3f
    public static let areaSize = 64

    /// Offsets in the area (struct kvm_vcpu_pv_apf_data).
    public static let flagsOffset: UInt64 = 0
    public static let tokenOffset: UInt64 = 4
    /// KVM_PV_REASON_PAGE_NOT_PRESENT, the only reason still sent through `flags`.
    public static let reasonPageNotPresent: UInt32 = 1
    /// A "ready" carrying this token wakes every waiting task.
    public static let wakeAllToken: UInt32 = ~0
    /// Error code of the "not present" #PF (CR2 carries the token instead of an address).
    public static let notPresentErrorCode: UInt32 = 0
    public static let pageFaultVector: UInt8 = 14
}
