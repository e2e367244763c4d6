import Synchronization
import VMMKit

/// A one-byte reset register of the PC (`ResetControl` at 0xcf9, `SystemControlPortA` at
/// 0x92): a write with any of `resetBits` set stops the machine (`StopReason.reset`; the
/// launcher does not reboot, so the run ends with status 0, as QEMU's does with
/// `-no-reboot`); any other write keeps its `keptBits`, and reads return them. The bytes
/// above the register (a wider access) are unassigned: reads all-ones, writes dropped.
/// The kept byte is saved in snapshots (`BuiltInDeviceState`).
class ResetRegister: @unchecked Sendable { // immutable but for the atomic; subclasses only name the port
    let port: UInt16
    let owner: String
    let resetBits: UInt8
    let keptBits: UInt8
    private let value = Atomic<UInt8>(0)

    init(port: UInt16, owner: String, resetBits: UInt8, keptBits: UInt8) {
        self.port = port
        self.owner = owner
        self.resetBits = resetBits
        self.keptBits = keptBits
    }

    /// The kept bits, for a snapshot.
    var state: UInt8 { value.load(ordering: .relaxed) }
    /// Puts back what `BuiltInDeviceState.decode` checked.
    func restore(_ byte: UInt8) { value.store(byte & keptBits, ordering: .relaxed) }

    func register(on dispatcher: ExitDispatcher) throws(VMMError) {
        try dispatcher.registerPIO(port: port, owner: owner) { [self] io, vcpu in
            for i in 0..<io.count {
                guard io.isWrite else {
                    io.setElement(i, 0xffff_ff00 | UInt32(value.load(ordering: .relaxed)))
                    continue
                }
                let byte = UInt8(truncatingIfNeeded: io.element(i))
                if byte & resetBits != 0 {
                    return vcpu.stopMachine(.reset("vCPU \(vcpu.id) wrote \(hex(byte)) to port \(hex(port))"))
                }
                value.store(byte & keptBits, ordering: .relaxed)
            }
            return .handled
        }
    }
}
