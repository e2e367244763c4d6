import Glibc
import GuestPayloads
import VMMKit

/// Monotonic nanoseconds.
func now() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// This thread's CPU time in nanoseconds: time the thread was preempted (a shared,
/// loaded machine) is not counted, so single-threaded per-exit figures hold under load.
func threadCPUNow() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

func payload(_ name: String) -> [UInt8] {
    var size = 0
    guard let start = guest_payload(name, &size) else { fatalError("no payload \(name)") }
    return Array(UnsafeBufferPointer(start: start, count: size))
}

/// A fresh single-vCPU VM running `name` at ring 0 with the given registers set.
func makeGuest(_ kvm: KVM, _ name: String, setup: (inout Registers) -> Void) throws -> (VirtualMachine, VCPU) {
    let vm = try kvm.createVM()
    try vm.memory.addRegion(name: "ram", guestAddress: 0, size: 2 << 20)
    try vm.memory.writeBytes(GuestLayout.codeStart, payload(name))
    let vcpu = try vm.createVCPU()
    try vcpu.setupLongMode(entry: GuestLayout.codeStart, stack: 0x80000)
    var regs = try vcpu.registers()
    setup(&regs)
    try vcpu.setRegisters(regs)
    return (vm, vcpu)
}

/// `value` with `digits` decimals (no Foundation for String(format:)).
func fmt(_ value: Double, _ digits: Int = 1) -> String {
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let scaled = Int64((value * scale).rounded())
    let whole = scaled / Int64(scale), frac = abs(scaled % Int64(scale))
    guard digits > 0 else { return "\(whole)" }
    let f = String(frac)
    return "\(scaled < 0 && whole == 0 ? "-" : "")\(whole)." + String(repeating: "0", count: digits - f.count) + f
}

func median(_ values: [Double]) -> Double {
    let s = values.sorted()
    return s[s.count / 2]
}
