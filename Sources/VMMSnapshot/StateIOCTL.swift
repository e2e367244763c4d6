import CKVM
import Glibc
import SystemPackage
import VMMKit

/// The snapshot's share of the ioctl layer: -1/errno becomes `SnapshotError.system`
/// naming the request and what it was for; EINTR is retried.
@discardableResult
func stateIOCTL<T>(_ fd: Int32, _ request: UInt, _ name: String, _ arg: inout T) throws(SnapshotError) -> Int32 {
    while true {
        let rc = withUnsafeMutablePointer(to: &arg) { ckvm_ioctl(fd, request, UnsafeMutableRawPointer($0)) }
        if rc >= 0 { return rc }
        let err = Errno(rawValue: errno)
        if err == .interrupted { continue }
        throw .system(.ioctlFailed(name: name, errno: err))
    }
}

@discardableResult
func stateIOCTL(_ fd: Int32, _ request: UInt, _ name: String, raw: UnsafeMutableRawPointer) throws(SnapshotError) -> Int32 {
    while true {
        let rc = ckvm_ioctl(fd, request, raw)
        if rc >= 0 { return rc }
        let err = Errno(rawValue: errno)
        if err == .interrupted { continue }
        throw .system(.ioctlFailed(name: name, errno: err))
    }
}

/// The KVM capabilities a snapshot's state needs, by name, as the manifest lists them.
enum StateCapability: String, CaseIterable {
    case irqchip = "KVM_CAP_IRQCHIP"
    case pitState2 = "KVM_CAP_PIT_STATE2"
    case adjustClock = "KVM_CAP_ADJUST_CLOCK"
    case vcpuEvents = "KVM_CAP_VCPU_EVENTS"
    case debugRegs = "KVM_CAP_DEBUGREGS"
    case xsave = "KVM_CAP_XSAVE"
    case xsave2 = "KVM_CAP_XSAVE2"
    case xcrs = "KVM_CAP_XCRS"
    case mpState = "KVM_CAP_MP_STATE"
    case tscControl = "KVM_CAP_TSC_CONTROL"
    case getTSCKHz = "KVM_CAP_GET_TSC_KHZ"
    /// Events saved with KVM_VCPUEVENT_VALID_PAYLOAD (a VM that injected #PF with CR2).
    case exceptionPayload = "KVM_CAP_EXCEPTION_PAYLOAD"

    var number: Int32 {
        switch self {
        case .irqchip: KVM_CAP_IRQCHIP
        case .pitState2: KVM_CAP_PIT_STATE2
        case .adjustClock: KVM_CAP_ADJUST_CLOCK
        case .vcpuEvents: KVM_CAP_VCPU_EVENTS
        case .debugRegs: KVM_CAP_DEBUGREGS
        case .xsave: KVM_CAP_XSAVE
        case .xsave2: KVM_CAP_XSAVE2
        case .xcrs: KVM_CAP_XCRS
        case .mpState: KVM_CAP_MP_STATE
        case .tscControl: KVM_CAP_TSC_CONTROL
        case .getTSCKHz: KVM_CAP_GET_TSC_KHZ
        case .exceptionPayload: KVM_CAP_EXCEPTION_PAYLOAD
        }
    }
}

extension KVM {
    /// `KVM_GET_MSR_INDEX_LIST`: the MSRs this kernel saves and restores for a vCPU.
    func msrIndexList() throws(SnapshotError) -> [UInt32] {
        let list = UnsafeMutablePointer<ckvm_msr_list>.allocate(capacity: 1)
        defer { list.deallocate() }
        list.initialize(to: ckvm_msr_list())
        list.pointee.nmsrs = UInt32(CKVM_MAX_MSR_INDICES)
        try stateIOCTL(fd.rawValue, CKVM_GET_MSR_INDEX_LIST, "KVM_GET_MSR_INDEX_LIST", raw: UnsafeMutableRawPointer(list))
        let count = min(Int(list.pointee.nmsrs), Int(CKVM_MAX_MSR_INDICES))
        let all = withUnsafeBytes(of: &list.pointee.indices) { Array($0.bindMemory(to: UInt32.self).prefix(count)) }
        // Each once: a restore refuses an MSR listed twice.
        var seen = Set<UInt32>()
        return all.filter { seen.insert($0).inserted }
    }
}
