import FuzzDriver
import Glibc

// The launcher's own PC devices behind guest ports (their source files are linked here):
// a program of reads and writes of the i8042 (ports 0x60, 0x64) and the CMOS RTC (0x70,
// 0x71). The i8042's status never says "input buffer full" (a guest waiting for it to
// clear would wait for ever), "output full" is set exactly while a reply waits, the reply
// queue stays bounded, and only the reset line's writes reset. The RTC's register C says
// nothing but "update ended", "alarm", "periodic" and "IRQ", the last exactly when
// register B enables a flag that is set, its clock stays within the
// offset a snapshot can hold, and its state reads back through the snapshot blob (whose
// register A never keeps "update in progress").
runFuzzer { data, size in
    let input = fuzzInput(data, size)
    let kbd = I8042()
    let rtc = RTC(cpus: 2, lowRAM: 64 << 20, highRAM: 0)
    var i = 0, awaitingOutputPort = false
    while i < input.count {
        let op = input[i], value = i + 1 < input.count ? input[i + 1] : 0
        i += 2
        if op & 4 != 0 {
            let port = op & 1 == 0 ? RTC.indexPort : RTC.dataPort
            if op & 2 == 0 {
                let v = rtc.access(port: port, write: nil)
                if port == RTC.dataPort, rtc.state.index & 0x7f == UInt8(RTC.registerC) {
                    let enables = rtc.state.ram[RTC.registerB] & 0x70
                    precondition(v & 0x0f == 0, "RTC register C \(v): bits 0-3 are never set")
                    precondition((v & 0x80 != 0) == (v & enables != 0), "RTC register C \(v): IRQ against register B's enables \(enables)")
                }
            } else {
                rtc.access(port: port, write: value)
            }
            precondition(rtc.state.offset.magnitude <= UInt64(RTC.maxOffset), "RTC offset \(rtc.state.offset)")
            continue
        }
        let port = op & 1 == 0 ? I8042.dataPort : I8042.commandPort
        if op & 2 == 0 {
            let status = kbd.read(I8042.commandPort)
            precondition(status & 0x02 == 0, "i8042 status \(status): input buffer full")
            _ = kbd.read(port)
            continue
        }
        let reset = kbd.write(port, value)
        let expected = port == I8042.commandPort ? (value >= 0xf0 && value & 1 == 0) : (awaitingOutputPort && value & 1 == 0)
        precondition(reset == expected, "write \(value) to \(port): reset \(reset)")
        awaitingOutputPort = port == I8042.commandPort && value == 0xd1
    }
    // Drain: at most the queue's limit of replies, with "output full" set while one waits.
    var replies = 0
    while kbd.read(I8042.commandPort) & 0x01 != 0 {
        _ = kbd.read(I8042.dataPort)
        replies += 1
        precondition(replies <= I8042.queueLimit, "more than \(I8042.queueLimit) replies queued")
    }
    // Both states through the snapshot blob and back.
    let state = BuiltInDeviceState(i8042: kbd.state, rtc: rtc.state)
    do throws(LauncherError) {
        let back = try BuiltInDeviceState.decode(state.encoded(), version: 1, where: "fuzz")
        precondition(back == state, "snapshot round trip")
    } catch {
        preconditionFailure("a state the devices hold is refused at restore: \(error.message)")
    }
    return 0
}
